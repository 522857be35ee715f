"""The direct oneDNN linear (csrc/kernels/dnnl/direct_linear.cpp) and the
packed GEMM (csrc/kernels/gemm/packed_gemm.cpp) against eager: rows 1 and
many, sizes off the vector width, with and without bias, every post-op, 3-d
inputs. The linear_direct_calls / linear_sgemm_calls counters prove which
kernel ran; TORCH_TVM_LINEAR_KERNELS=aten is PyTorch's op, and the default
(auto) measures all three per shape (torch_tvm/_linear_choice.py)."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import torch_tvm
from conftest import (assert_outputs_close, call_counting, counters_in_subprocess, cpu_flags,
                      run_tvm, sgemm_supported, traced_warm)

POSTS = {
    "none": lambda y: y * 2.0,  # a TVM kernel after the linear keeps the group at two ops
    "gelu": F.gelu,
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": F.silu,
    "relu": torch.relu,  # NaN-keeping epilogue after the kernel
    "relu6": F.relu6,  # NaN-keeping clamp after the kernel
}


class _LinearThen(nn.Module):
    def __init__(self, lin, post):
        super().__init__()
        self.lin, self.post = lin, post

    def forward(self, x):
        return self.post(self.lin(x))


COUNTER = {"onednn": "linear_direct_calls", "sgemm": "linear_sgemm_calls"}


def _kernels():
    return torch_tvm.stats()["kernels"]


def _run(m, x, kernel="onednn"):
    """(output, calls of `kernel`, all linear calls) of running m 3 times."""
    before = _kernels()
    out = run_tvm(m, x)
    after = _kernels()
    return (out, after[COUNTER[kernel]] - before[COUNTER[kernel]],
            after["linear_calls"] - before["linear_calls"])


@pytest.fixture
def direct(monkeypatch):
    monkeypatch.setenv("TORCH_TVM_LINEAR_KERNELS", "onednn")
    torch_tvm.enable()


@pytest.fixture(params=["onednn", "sgemm"])
def kernel(request, monkeypatch):
    """Each kernel of our own, forced; the packed GEMM needs AVX2 and FMA
    (without them it refuses, counted, and PyTorch's op runs: checked too)."""
    monkeypatch.setenv("TORCH_TVM_LINEAR_KERNELS", request.param)
    torch_tvm.enable()
    return request.param


def _check_ran(kernel, calls, total, before_refused):
    assert total > 0
    if kernel == "sgemm" and not sgemm_supported():
        assert calls == 0 and _kernels()["linear_sgemm_refused"] > before_refused
    else:
        assert calls == total


CASES = [  # (input shape, out features, bias)
    ((1, 512), 100, True),
    ((3, 17), 5, False),
    ((2, 33, 24), 40, True),  # 3-d: 66 rows
    ((1, 197, 64), 48, True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"x{'x'.join(map(str, c[0]))}-o{c[1]}-b{int(c[2])}")
def test_linear_kernels_against_eager(case, kernel):
    shape, out_features, bias = case
    m = _LinearThen(nn.Linear(shape[-1], out_features, bias=bias), POSTS["none"]).eval()
    x = torch.randn(*shape)
    refused = _kernels()["linear_sgemm_refused"]
    out, calls, total = _run(m, x, kernel)
    assert_outputs_close(out, m(x))
    _check_ran(kernel, calls, total, refused)


@pytest.mark.parametrize("post", sorted(POSTS))
def test_post_ops_against_eager(post, kernel):
    """oneDNN fuses every post-op (relu / relu6 keep NaN after it); the packed
    GEMM fuses relu / relu6 keeping NaN itself, and runs the others after it."""
    m = _LinearThen(nn.Linear(24, 19), POSTS[post]).eval()
    x = torch.randn(5, 24)
    x[0, 3] = float("nan")
    x[2, 7] = float("inf")
    refused = _kernels()["linear_sgemm_refused"]
    out, calls, total = _run(m, x, kernel)
    assert_outputs_close(out, m(x), equal_nan=True)
    _check_ran(kernel, calls, total, refused)


def test_packed_gemm_many_k_blocks_and_row_split(monkeypatch):
    """Past the packed GEMM's 256-deep k blocks and 240-row blocks, with fewer
    column panels than two per thread (so the threads split the rows)."""
    monkeypatch.setenv("TORCH_TVM_LINEAR_KERNELS", "sgemm")
    torch_tvm.enable()
    m = _LinearThen(nn.Linear(700, 20), F.relu6).eval()
    x = torch.randn(3, 170, 700)
    refused = _kernels()["linear_sgemm_refused"]
    out, calls, total = _run(m, x, "sgemm")
    assert_outputs_close(out, m(x))
    _check_ran("sgemm", calls, total, refused)


@pytest.mark.parametrize("post", ["relu", "relu6"])
def test_nan_guard_fuses_finite_inputs_and_keeps_nan_otherwise(post, direct):
    """2 * in <= out: relu / relu6 run as the primitive's post-op on inputs the
    NanGuard admits, and after an unfused primitive on the others (NaN, inf, or
    a finite value the weights could overflow); a narrowing linear never guards."""
    m = nn.Sequential(_LinearThen(nn.Linear(8, 19), POSTS[post]),
                      _LinearThen(nn.Linear(19, 6), POSTS[post])).eval()
    x = torch.randn(5, 8)
    traced = traced_warm(m, x)

    out, n = call_counting(traced, x)
    assert_outputs_close(out, m(x))
    assert (n["nan_guard_fused_calls"], n["nan_guard_unfused_calls"]) == (1, 0)
    for bad in (float("nan"), float("inf"), float(torch.finfo(torch.float32).max) / 2):
        xb = x.clone()
        xb[1, 3] = bad
        out, n = call_counting(traced, xb)
        assert (n["nan_guard_fused_calls"], n["nan_guard_unfused_calls"]) == (0, 1), bad
        assert_outputs_close(out, m(xb), equal_nan=True)


def test_pytorch_op_path_against_eager(monkeypatch):
    monkeypatch.setenv("TORCH_TVM_LINEAR_KERNELS", "aten")
    torch_tvm.enable()
    m = _LinearThen(nn.Linear(24, 19), F.gelu).eval()
    x = torch.randn(5, 24)
    out, direct_calls, total = _run(m, x)
    assert_outputs_close(out, m(x))
    assert total > 0 and direct_calls == 0


def test_auto_choice_is_measured_and_applied(monkeypatch):
    """Default: the first build of a shape times both kernels on the real
    weight; explain() lists the choice, and the kernel that runs is the one chosen."""
    from torch_tvm import _linear_choice

    monkeypatch.delenv("TORCH_TVM_LINEAR_KERNELS", raising=False)
    torch_tvm.enable()
    m = _LinearThen(nn.Linear(37, 23), F.gelu).eval()
    x = torch.randn(6, 37)
    before = _kernels()
    out = run_tvm(m, x)
    after = _kernels()
    assert_outputs_close(out, m(x))
    [choice] = [c for c in _linear_choice.decisions() if c["shape"] == [6, 37, 23]]
    assert choice["source"] == "measured" and choice["post"] == "gelu"
    expected = {"onednn", "aten"} | ({"sgemm"} if sgemm_supported() else set())
    assert set(choice["times_us"]) == expected
    assert choice["kernel"] == _linear_choice._pick(choice["times_us"])
    total = after["linear_calls"] - before["linear_calls"]
    for kernel, counter in COUNTER.items():
        calls = after[counter] - before[counter]
        assert calls == (total if choice["kernel"] == kernel else 0), kernel
    assert total > 0
    assert "kernel choice: linear 6x37->23 (+gelu)" in str(torch_tvm.explain(m, [x]))


def test_pick_prefers_the_packed_gemm_within_its_margin():
    from torch_tvm._linear_choice import SGEMM_MARGIN, _pick

    edge = 100 * (1 + SGEMM_MARGIN)
    assert _pick({"onednn": 100.0, "sgemm": edge * 0.999, "aten": 150.0}) == "sgemm"
    assert _pick({"onednn": 100.0, "sgemm": edge * 1.001, "aten": 150.0}) == "onednn"
    assert _pick({"onednn": 120.0, "sgemm": 130.0, "aten": 90.0}) == "aten"
    assert _pick({"onednn": 100.0, "aten": 101.0}) == "onednn"  # no AVX2: no sgemm entry


def test_bad_kernel_setting_is_refused(monkeypatch):
    monkeypatch.setenv("TORCH_TVM_LINEAR_KERNELS", "fast")
    torch_tvm.enable(strict=True)
    m = _LinearThen(nn.Linear(4, 4), POSTS["none"]).eval()
    with pytest.raises(RuntimeError, match="TORCH_TVM_LINEAR_KERNELS must be one of auto, onednn, sgemm, aten"):
        run_tvm(m, torch.randn(2, 4))


def test_refused_when_onednn_binds_to_torch_symbols(tmp_path):
    """With libtorch_cpu made global before torch_tvm loads, the system
    oneDNN's GEMM binds to torch's copy and cannot run: the direct kernel
    refuses itself at prepack (counted) and PyTorch's op gives the result.
    oneDNN 2.6 runs this small inner product on that GEMM on AVX2 CPUs, but
    on AVX-512 ones picks brgemm, which never reaches it and runs fine:
    capped at AVX2, every host takes the GEMM."""
    refused, direct_calls, calls, fallbacks = counters_in_subprocess(
        """
        m = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.GELU()).eval()
        x = torch.randn(3, 16)
        torch_tvm.enable()
        """,
        ["linear_direct_refused", "linear_direct_calls", "linear_calls", "fallback_calls"],
        tmp_path, env={"TORCH_TVM_LINEAR_KERNELS": "onednn", "ONEDNN_MAX_CPU_ISA": "AVX2"},
        before_import="""
        import ctypes, os
        ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"),
                    mode=os.RTLD_GLOBAL)
        """)
    assert refused >= 1 and direct_calls == 0 and calls >= 1 and fallbacks == 0


def test_packed_gemm_isa_follows_the_cpu():
    """The packed GEMM's micro-kernel is the widest this CPU runs: AVX-512
    where /proc/cpuinfo lists avx512f, AVX2/FMA otherwise, none without."""
    import tvm_ffi
    isa = tvm_ffi.get_global_func("torch_tvm.kernels.packed_gemm_isa")()
    expected = ("avx512" if "avx512f" in cpu_flags() else "avx2") if sgemm_supported() else ""
    assert isa == expected
