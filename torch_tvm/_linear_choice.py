"""Per linear shape, the linear kernel measured fastest on this machine.

A float32 linear (matmul by a constant weight, optional bias and fused
post-op) that OffloadToOneDNN takes runs as torch_tvm.kernels.linear, with
its weight prepacked for one of three kernels (csrc/kernels/linear_kernels.cpp):
  - "onednn": an inner product of the system oneDNN 2.6, built once at
    prepack (csrc/kernels/dnnl/direct_linear.h): no per-call glue, which
    makes it up to 1.8x faster on small GEMMs such as a classifier head;
  - "sgemm": torch_tvm's own GEMM (csrc/kernels/gemm/packed_gemm.h), its
    weight packed into 16-column panels for an AVX2/FMA 6x16 micro-kernel
    (12x32 over two panels on AVX-512 CPUs),
    as onnxruntime's MLAS does: faster than both oneDNNs on BERT's GEMMs on
    a Zen 3 (benchmarks/linear_choice.py); needs AVX2 and FMA;
  - "aten": PyTorch's mkldnn::_linear_pointwise (its oneDNN 3.x): ~45 us of
    per-call glue, but faster GEMM code on some larger shapes (BERT's
    128x512x512, for example).
None wins by size alone, so the first build that meets a (rows, in, out,
bias, post-op, threads) signature prepacks the real weight every way and
times them through the same FFI call, interleaved, best round of each; the
fastest is kept for the rest of the process (and stored by tune()), the
packed GEMM when it is within SGEMM_MARGIN of the fastest; the
timing runs are not in the kernel counters. A kernel that cannot take the
linear here (linear_direct_refused, linear_sgemm_refused) is not a candidate.

TORCH_TVM_LINEAR_KERNELS=onednn|sgemm|aten forces one kernel (auto: measure).
`decisions()` lists every choice; explain() prints them and
stats()["kernels"]["linear_direct_calls"] / ["linear_sgemm_calls"] count
the calls of each.
"""
from __future__ import annotations

import itertools
import os
import threading

import tvm
import tvm_ffi

from . import _tuning
from ._aten_choice import _best_of_interleaved

ENV = "TORCH_TVM_LINEAR_KERNELS"
KERNELS = ("onednn", "sgemm", "aten")
MODES = ("auto",) + KERNELS

# Weight bytes each kernel cycles through when timed (see _measure).
_COLD_BYTES = 48 << 20

_lock = threading.Lock()
_decisions: dict[tuple, dict] = {}


def decisions() -> list[dict]:
    with _lock:
        return [dict(d) for d in _decisions.values()]


def _mode() -> str:
    mode = os.environ.get(ENV) or "auto"
    if mode not in MODES:
        raise ValueError(f"torch_tvm: {ENV} must be one of {', '.join(MODES)}, not {mode!r}")
    return mode


def _threads() -> int:
    target = tvm.target.Target.current()
    return int(target.attrs.get("num-cores", 1)) if target is not None else 1


def _measure(weight, bias, rows, post):
    """{kernel: us per call} of the real weight prepacked every way that can
    take it here, in a timing scope (released on return, not in the kernel
    counters); None when only PyTorch's op can."""
    import numpy as np  # noqa: PLC0415

    prepack = tvm_ffi.get_global_func("torch_tvm.kernels.linear_prepack")
    linear = tvm_ffi.get_global_func("torch_tvm.kernels.linear")
    kernel_of = tvm_ffi.get_global_func("torch_tvm.kernels.linear_kernel")
    begin = tvm_ffi.get_global_func("torch_tvm.kernels.begin_timing_scope")
    end = tvm_ffi.get_global_func("torch_tvm.kernels.end_packed_weight_scope")
    k = int(weight.shape[0])
    x = tvm.runtime.tensor(np.random.default_rng(0).standard_normal((rows, k)).astype("float32"))
    # In a model's forward pass each weight comes from memory, not from cache;
    # timed hot, the kernels rank differently (BERT-base on a Zen 3: the packed
    # GEMM won by 6% in the graph while hot timings picked oneDNN for most
    # shapes). So each kernel cycles through copies of the weight, enough to
    # spill the caches (at most 8).
    copies = max(1, min(8, -(-_COLD_BYTES // (4 * k * int(weight.shape[1])))))
    begin()
    try:
        handles = {kn: [prepack(weight, bias, rows, *post, kn) for _ in range(copies)]
                   for kn in KERNELS}
        # A kernel that cannot take the linear packed it for PyTorch's op.
        handles = {kn: hs for kn, hs in handles.items() if kernel_of(hs[0]) == kn}
        if set(handles) == {"aten"}:
            return None
        times = _best_of_interleaved([(_cycling(linear, x, hs), []) for hs in handles.values()],
                                     rounds=7, per_round=3)
        return dict(zip(handles, times))
    finally:
        end()


# The packed GEMM runs unless another kernel times faster by more than this.
# Timed alone, BERT-base's 128x768x768 ran level on the GEMM and oneDNN (each
# won some compiles), but with every linear of the model on one kernel the
# GEMM was 3.4% faster (151.5 -> 146.3 ms, one process, Zen 3): a tie alone
# is not a tie in the graph.
SGEMM_MARGIN = 0.03


def _pick(times: dict) -> str:
    best = min(times, key=times.get)
    if "sgemm" in times and times["sgemm"] <= times[best] * (1 + SGEMM_MARGIN):
        return "sgemm"
    return best


def _cycling(linear, x, handles):
    """A call of `linear` on x with the next of `handles` each time."""
    handles = itertools.cycle(handles)
    return lambda: linear(x, next(handles))


def kernel_for(weight, bias, rows: int, post: tuple) -> str:
    """"onednn", "sgemm" or "aten" for a linear of `rows` rows by `weight` ([in, out],
    a tvm tensor), with `bias` (or None) and post-op (unary, scalars, algorithm)."""
    mode = _mode()
    k, n = (int(d) for d in weight.shape)
    unary, scalars, algorithm = post
    threads = _threads()
    signature = [[rows, k, n], bias is not None, unary, list(scalars), algorithm]
    key = (rows, k, n, bias is not None, unary, tuple(scalars), algorithm, threads)
    if mode != "auto":
        with _lock:
            _decisions[key] = {"op": "linear", "shape": [rows, k, n], "post": unary,
                               "threads": threads, "times_us": {}, "choice": mode,
                               "kernel": mode, "source": "forced"}
        return mode
    db_key = _tuning.choice_key("linear", signature, threads)
    with _lock:
        known = _decisions.get(key)
    if known is None or known["source"] == "forced":
        known = _tuning.lookup_choice(db_key)
        if known is None or known.get("choice") not in KERNELS:
            times = _measure(weight, bias, rows, post)
            refused = times is None
            choice = "aten" if refused else _pick(times)
            known = {"op": "linear", "shape": [rows, k, n], "post": unary, "threads": threads,
                     "times_us": times or {}, "choice": choice, "kernel": choice,
                     "source": "only PyTorch's op can run it" if refused else "measured"}
        with _lock:
            _decisions[key] = known
    _tuning.note_choice(db_key, known)
    return known["choice"]
