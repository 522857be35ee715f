"""Purely spatial kernels (elementwise, pad, slice, softmax epilogues): the
vector loop is read from the scheduled TIR, never from timing."""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
import tvm

import torch_tvm
from torch_tvm import _aten_choice, _build
from conftest import run_tvm


def _loops(fn, inputs):
    mod = torch_tvm.to_relax(fn, inputs)
    target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2,
                                "vector-width": 512})
    _aten_choice.force = "tvm"
    try:
        with target, tvm.transform.PassContext(opt_level=3):
            mod = _build._pipeline(3)(mod)
    finally:
        _aten_choice.force = None
    out = {}
    for gv, f in mod.functions.items():
        if isinstance(f, tvm.tirx.PrimFunc):
            out[gv.name_hint] = [line.strip() for line in f.script().splitlines()
                                 if line.strip().startswith("for ")]
    return out


def test_pad_vectorises_rows_and_keeps_the_remainder_apart():
    """58-wide rows: 3 whole vectors and a 10-element loop, the rows in
    parallel; no predicated vector loop and no index fused across rows (the
    padded read would become a gather)."""
    (loops,) = _loops(lambda x: F.pad(x, (1, 1, 1, 1)) + 1, [torch.randn(1, 8, 6, 56)]).values()
    assert re.match(r"for \w+ in T.parallel\(T.int64\(64\)\)", loops[0]), loops  # 8 x 8 rows
    assert any("T.vectorized(T.int64(16))" in l for l in loops), loops
    assert any("range(T.int64(48), T.int64(58))" in l for l in loops), loops


def test_elementwise_fuses_inner_loops_to_whole_vectors():
    """56x56 planes: 3136 = 196 x 16 after fusing H and W; the bias broadcast
    along the fused loops does not stop the fusion."""
    (loops,) = _loops(lambda x, b: torch.relu(x + b),
                      [torch.randn(1, 8, 56, 56), torch.randn(1, 8, 1, 1)]).values()
    assert any("range(T.int64(196))" in l for l in loops), loops
    assert any("T.vectorized(T.int64(16))" in l for l in loops), loops


def test_odd_rows_get_a_vector_body_and_a_tail():
    """197x197 (attention): no suffix of loops is a multiple of 16."""
    (loops,) = _loops(lambda x: x * 2.0 + 1.0, [torch.randn(1, 2, 197, 197)]).values()
    assert any("T.vectorized(T.int64(16))" in l for l in loops), loops
    assert any("range(T.int64(192), T.int64(197))" in l for l in loops), loops


def test_wide_transpose_runs_in_strips_along_its_reads():
    """[197, 768] -> [768, 197]: strips of 16 input columns in parallel, the
    197 input rows inside, each step one contiguous vector read (vectorising
    the 197-long output rows would read them as gathers)."""
    (loops,) = _loops(lambda x: x.transpose(1, 2).contiguous() * 2,
                      [torch.randn(2, 197, 768)]).values()
    assert re.match(r"for \w+ in T.parallel\(T.int64\(96\)\)", loops[0]), loops  # 2 x 48
    assert "range(T.int64(197))" in loops[1], loops
    assert "T.vectorized(T.int64(16))" in loops[2], loops


def test_pad_slice_and_odd_rows_match_eager():
    cases = [
        (lambda x: F.pad(x, (1, 2, 3, 0), value=0.5) * 2, torch.randn(1, 3, 7, 37)),
        (lambda x: x[:, :, 1:-1, 2:].contiguous() + 1, torch.randn(2, 3, 9, 41)),
        (lambda x: torch.softmax(x, -1) * 2, torch.randn(1, 2, 19, 197)),
        (lambda x: x.transpose(1, 2).contiguous() * 2, torch.randn(2, 37, 48)),
        (lambda x: x.permute(0, 2, 3, 1).contiguous() + 1, torch.randn(2, 32, 5, 16)),
        (lambda x: x.permute(0, 2, 3, 1).contiguous() + 1, torch.randn(2, 3, 4, 32)),
    ]
    for fn, x in cases:
        out = run_tvm(fn, x)
        torch.testing.assert_close(out, fn(x), rtol=1e-5, atol=1e-6)


def test_max_pool_with_unit_dilation_has_no_bounds_test_in_its_vector_loop():
    """Padding by clamping the index (a duplicate of an element of the same
    window) instead of a per-element select: NHWC 3x3/2 went 0.22 -> 0.07 ms.
    Dilated windows are not contiguous, so they keep the bounds test."""
    x = torch.randn(1, 16, 14, 14).to(memory_format=torch.channels_last)
    for dilation, has_test in ((1, False), (2, True)):
        mod = torch_tvm.to_relax(lambda x: F.max_pool2d(x, 3, 2, 1, dilation=dilation), [x])
        target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(),
                                    "num-cores": 2, "vector-width": 512})
        with target, tvm.transform.PassContext(opt_level=3):
            mod = _build._pipeline(3)(mod)
        (text,) = [f.script() for f in mod.functions.values() if isinstance(f, tvm.tirx.PrimFunc)]
        assert ("T.if_then_else" in text) == has_test, text
        assert "T.vectorized" in text, text
