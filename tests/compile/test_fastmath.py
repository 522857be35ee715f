"""The arithmetic-only float32 transcendentals of torch_tvm/_fastmath.py.

Each is compiled in a vectorised loop for the host and checked against
float64 (relative error within a few float32 ulp, edge values exactly as
IEEE/torch), and the compiled code is checked to call no libm function.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import tvm
from tvm import s_tir, te

import torch_tvm
from torch_tvm import _fastmath as fm
from torch_tvm._schedule_reduction import vectorise_spatial

N = 4099  # not a multiple of any vector width: the remainder loop runs too

EDGES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 1e-40, -1e-40, 1e-45,
                  0.5, -0.5, 1.0, -1.0, 3.99, 4.01, 9.0, -9.0, 20.0, -20.0, 87.0, 88.7, 88.8,
                  -87.3, -103.5, -104.5, -110.0, 1e4, -1e4, 1e30, -1e30], dtype=np.float32)


def _target():
    return tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(),
                              "vector-width": torch_tvm._C.host_vector_width()})


def _schedule(fn):
    """fn over N floats, scheduled as torch_tvm schedules elementwise kernels
    (vectorise_spatial): whole vectors, then a scalar remainder loop
    (loop_partition). Not a vectorised split with a tail predicate
    (`if i < N`): TVM scalarises such a loop whatever its body, and what LLVM
    then makes of the scalar loop (unrolled and partly SLP-vectorised, or
    loop-vectorised with masks) depends on the body's size and the vector
    width, not on whether the function vectorises."""
    a = te.placeholder((N,), "float32", name="A")
    b = te.compute((N,), lambda i: fn(a[i]), name="B")
    sch = s_tir.Schedule(te.create_prim_func([a, b]))
    block = sch.get_sblock("B")
    vectorise_spatial(sch, block, sch.get_loops(block), torch_tvm._C.host_vector_width() // 32)
    return sch.mod


def _compile(fn):
    return tvm.compile(_schedule(fn), target=_target())


def _run(fn, xs):
    mod = _compile(fn)
    a = tvm.runtime.tensor(xs.astype(np.float32))
    b = tvm.runtime.tensor(np.zeros(N, np.float32))
    mod(a, b)
    return b.numpy(), mod


def _inputs(lo, hi, positive=False):
    rng = np.random.default_rng(0)
    xs = rng.uniform(lo, hi, N).astype(np.float32)
    edges = np.abs(EDGES) if positive else EDGES
    xs[:len(edges)] = edges
    return xs


def _erf64(v):
    return np.vectorize(math.erf, otypes=[np.float64])(v)


CASES = {
    # name: (fastmath function, float64 reference, input range, positive only)
    "exp": (fm.exp, np.exp, (-100.0, 89.0), False),
    "log": (fm.log, np.log, (1e-30, 1e30), True),
    "tanh": (fm.tanh, np.tanh, (-10.0, 10.0), False),
    "sigmoid": (fm.sigmoid, lambda v: 1.0 / (1.0 + np.exp(-v)), (-40.0, 40.0), False),
    "erf": (fm.erf, _erf64, (-5.0, 5.0), False),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_accuracy_against_float64(name):
    fn, ref, (lo, hi), positive = CASES[name]
    xs = _inputs(lo, hi, positive)
    if name == "log":  # log spans many magnitudes: sample the exponent
        xs[len(EDGES):] = np.exp(np.random.default_rng(1).uniform(-90, 88, N - len(EDGES)))
    got, _ = _run(fn, xs)
    with np.errstate(all="ignore"):
        want = ref(xs.astype(np.float64))
        want[np.isinf(want.astype(np.float32))] = want.astype(np.float32)[
            np.isinf(want.astype(np.float32))]  # beyond float32's range: inf
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan), xs[np.isnan(got) != nan]
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf].astype(np.float32)), xs[inf]
    # Results in float32's normal range: a few ulp, like SLEEF's u10 functions.
    normal = ~nan & ~inf & (np.abs(want) >= np.finfo(np.float32).tiny)
    rel = np.abs(got[normal] - want[normal]) / np.abs(want[normal])
    assert rel.max() <= 1e-6, (name, rel.max(), xs[normal][rel.argmax()])
    # Subnormal results: within float32's subnormal spacing of the true value.
    sub = ~nan & ~inf & ~normal
    assert np.all(np.abs(got[sub] - want[sub]) <= 2 * 1.5e-45), xs[sub]


@tvm.ir.instrument.pass_instrument
class _AfterVectorize:
    """Keeps the TIR as tirx.VectorizeLoop leaves it."""

    def __init__(self):
        self.tir = None

    def run_after_pass(self, mod, info):
        if info.name == "tirx.VectorizeLoop":
            self.tir = str(mod)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiles_to_vector_code_without_libm_calls(name):
    after = _AfterVectorize()
    with tvm.transform.PassContext(instruments=[after]):
        mod = _compile(CASES[name][0])
    ll = mod.mod.inspect_source("ll")
    assert not re.search(r"call .*@(expf|logf|tanhf|erff|llvm\.exp|llvm\.log)\b", ll), name
    lanes = torch_tvm._C.host_vector_width() // 32
    assert f"<{lanes} x float>" in ll, name
    # Vectorised by TVM itself, not left scalar for LLVM to re-vectorise: a
    # call without TVectorizable in the body (tirx.isnan, tirx.erf) makes
    # VectorizeLoop scalarise the whole loop.
    assert after.tir is not None and f"float32x{lanes}" in after.tir, name


def test_matches_torch_on_the_same_inputs():
    """The functions as torch computes them (eager, vectorised with SLEEF)."""
    xs = _inputs(-30.0, 30.0)
    t = torch.from_numpy(xs)
    for name, op in [("exp", torch.exp), ("tanh", torch.tanh), ("sigmoid", torch.sigmoid),
                     ("erf", torch.erf)]:
        got, _ = _run(CASES[name][0], xs)
        torch.testing.assert_close(torch.from_numpy(got), op(t), rtol=1e-6, atol=1e-30,
                                   equal_nan=True, msg=name)
