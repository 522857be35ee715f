"""The direct oneDNN conv kernels (csrc/kernels/dnnl/direct_conv.cpp) against
eager, per op: strides, padding, dilation, groups, bias, fused post-ops, the
residual add in place and into a copy, channel counts off the vector width,
batch 1 and 3. The conv2d_direct_calls counter proves which kernel ran;
TORCH_TVM_CONV_KERNELS=aten is the PyTorch-op path it replaced."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import tvm

import torch_tvm
from conftest import (assert_outputs_close, call_counting, counters_in_subprocess, run_tvm,
                      traced_warm)


@pytest.fixture(autouse=True)
def _onednn_convs():
    """oneDNN for every conv: no Winograd choice."""
    torch_tvm.enable(winograd="off")
    yield


def _kernels():
    return torch_tvm.stats()["kernels"]


def _calls(fn, *inputs):
    """(output, direct conv calls, all oneDNN conv calls) of running fn 3 times
    (the first call profiles and runs in PyTorch)."""
    before = _kernels()
    out = run_tvm(fn, *inputs)
    after = _kernels()
    direct = after["conv2d_direct_calls"] - before["conv2d_direct_calls"]
    return out, direct, after["conv2d_calls"] - before["conv2d_calls"]


class _ConvThen(nn.Module):
    def __init__(self, conv, post):
        super().__init__()
        self.conv, self.post = conv, post

    def forward(self, x):
        return self.post(self.conv(x))


POSTS = {
    "none": lambda y: y * 2.0,  # a TVM kernel after the conv keeps the group at two ops
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": F.silu,
    "gelu": F.gelu,
    "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
    "relu": torch.relu,  # not fused (NaN), runs as a TVM kernel
}

CASES = [
    # (in_ch, out_ch, kernel, stride, padding, dilation, groups, bias, hw)
    (3, 16, 3, 2, 1, 1, 1, True, 17),
    (7, 13, 1, 1, 0, 1, 1, True, 9),
    (13, 24, 3, 1, 2, 2, 1, False, 11),
    (16, 16, 5, 2, 2, 1, 1, True, 15),
    (24, 24, 3, 1, 1, 1, 24, True, 14),  # depthwise
    (24, 24, 3, 2, 0, 1, 24, False, 13),  # depthwise, stride 2, no padding
    (13, 13, 3, 1, 1, 2, 13, True, 10),  # depthwise, dilated, off the vector width
]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "ic{}oc{}k{}s{}p{}d{}g{}b{}".format(*c[:8]))
def test_conv_against_eager(case, batch):
    ic, oc, k, s, p, d, g, bias, hw = case
    conv = nn.Conv2d(ic, oc, k, stride=s, padding=p, dilation=d, groups=g, bias=bias)
    m = _ConvThen(conv, POSTS["none"]).eval()
    x = torch.randn(batch, ic, hw, hw)
    out, direct, total = _calls(m, x)
    assert_outputs_close(out, m(x))
    assert total > 0 and direct == total


@pytest.mark.parametrize("post", sorted(POSTS))
def test_fused_post_ops_against_eager(post):
    m = _ConvThen(nn.Conv2d(8, 12, 3, padding=1), POSTS[post]).eval()
    x = torch.randn(2, 8, 10, 10)
    out, direct, _ = _calls(m, x)
    assert_outputs_close(out, m(x))
    assert direct > 0


class _Residual(nn.Module):
    """conv_b(relu(conv_c(x))) + r with r = conv_a(x): r is dead after the add
    (accumulated in place) or read again (accumulated into a copy)."""

    def __init__(self, c, read_again, groups=(1, 1, 1)):
        super().__init__()
        self.a = nn.Conv2d(c, c, 3, padding=1, groups=groups[0])
        self.b = nn.Conv2d(c, c, 3, padding=1, groups=groups[1])
        self.c = nn.Conv2d(c, c, 1, groups=groups[2])
        self.read_again = read_again

    def forward(self, x):
        r = self.a(x)
        y = self.b(torch.relu(self.c(x))) + r
        return (y, r * 3.0) if self.read_again else torch.sigmoid(y)


@pytest.mark.parametrize("read_again", [False, True])
def test_residual_add_against_eager(read_again):
    m = _Residual(11, read_again).eval()
    x = torch.randn(3, 11, 9, 9)
    before = _kernels()["conv2d_in_place_calls"]
    out, direct, total = _calls(m, x)
    assert_outputs_close(out, m(x))
    assert total > 0 and direct == total
    in_place = _kernels()["conv2d_in_place_calls"] - before
    assert in_place == (0 if read_again else total // 3)  # 3 convs per run, 1 add


def test_pytorch_op_path_against_eager(monkeypatch):
    """Every conv keeps PyTorch's op under TORCH_TVM_CONV_KERNELS=aten.
    Residual add included."""
    monkeypatch.setenv("TORCH_TVM_CONV_KERNELS", "aten")
    m, x = _Residual(8, False), torch.randn(1, 8, 9, 9)
    out, direct, total = _calls(m.eval(), x)
    assert_outputs_close(out, m(x))
    assert total > 0 and direct == 0


def test_grouped_convs_against_eager():
    """Grouped, non-depthwise convs of 4 channels per group, residual add
    included, with whichever kernel this host takes (on AVX-512 oneDNN 2.6
    has a direct kernel for them)."""
    m, x = _Residual(32, False, groups=(8, 8, 8)).eval(), torch.randn(1, 32, 12, 12)
    out, _, total = _calls(m, x)
    assert_outputs_close(out, m(x))
    assert total > 0


def test_grouped_convs_on_im2col_gemm_keep_pytorch_op(tmp_path):
    """Where oneDNN 2.6 has only an im2col+GEMM kernel for such a conv (AVX2
    CPUs; capped at AVX2 here so every host takes it), which is 2x slower
    than PyTorch's and fails to execute with a sum post-op, the conv keeps
    PyTorch's op: no direct call, results as eager's."""
    direct, calls = counters_in_subprocess(
        """
        import torch.nn as nn
        class R(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Conv2d(32, 32, 3, padding=1, groups=8)
                self.b = nn.Conv2d(32, 32, 3, padding=1, groups=8)
                self.c = nn.Conv2d(32, 32, 1, groups=8)
            def forward(self, x):
                return torch.sigmoid(self.b(torch.relu(self.c(x))) + self.a(x))
        torch_tvm.enable(winograd="off")
        m, x = R().eval(), torch.randn(1, 32, 12, 12)
        """,
        ["conv2d_direct_calls", "conv2d_calls"], tmp_path, env={"ONEDNN_MAX_CPU_ISA": "AVX2"})
    assert calls > 0 and direct == 0


def test_bad_kernel_setting_is_refused(monkeypatch):
    monkeypatch.setenv("TORCH_TVM_CONV_KERNELS", "fast")
    torch_tvm.enable(winograd="off", strict=True)
    m = _ConvThen(nn.Conv2d(4, 4, 1), POSTS["none"]).eval()
    with pytest.raises(RuntimeError, match="TORCH_TVM_CONV_KERNELS must be 'onednn' or 'aten'"):
        run_tvm(m, torch.randn(1, 4, 5, 5))


KEEP_NAN_POSTS = {
    "relu": torch.relu,
    "relu6": F.relu6,
    "clamp": lambda y: torch.clamp(y, -0.5, 2.0),
}


@pytest.mark.parametrize("post", sorted(KEEP_NAN_POSTS))
def test_nan_keeping_relu_and_clamp_fuse_into_the_conv(post):
    """relu / clamp run inside the conv's extern call (ATen's relu_ / clamp_
    on its output), not as a TVM kernel after it, and keep NaN and inf."""
    from torch_tvm import _build

    m = _ConvThen(nn.Conv2d(4, 6, 3, padding=1), KEEP_NAN_POSTS[post]).eval()
    x = torch.randn(1, 4, 8, 8)
    x[0, 1, 2, 3] = float("nan")
    x[0, 2, 5, 5] = float("inf")
    out, direct, _ = _calls(m, x)
    assert_outputs_close(out, m(x), equal_nan=True)
    assert direct > 0

    # No TVM kernel is left for the relu / clamp (its PrimFunc would be named
    # after the op: relu, maximum, minimum, clip).
    mod = torch_tvm.to_relax(m, [x])
    target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2})
    with target, tvm.transform.PassContext(opt_level=3):
        main = _build._pipeline(3)(mod)["main"].script()
    assert "torch_tvm.kernels.conv2d_nhwc" in main, main
    for name in ("relu", "maximum", "minimum", "clip"):
        assert name not in main, main


def _guard_counts(m, x):
    """(output, guarded calls run fused, run unfused, fused on a trusted input)."""
    out, n = call_counting(m, x)
    return (out,) + tuple(n.values())


@pytest.mark.parametrize("post", sorted(KEEP_NAN_POSTS))
def test_nan_guard_fuses_finite_inputs_and_keeps_nan_otherwise(post):
    """relu / clamp run as the primitive's post-op when no NaN or inf can reach
    it, and as the NaN-keeping ATen op after an unfused primitive otherwise.
    The first conv (input at most half its output) scans its input against the
    bound its weights give; the stride-2 conv after it (input 8x its output)
    does not scan, and runs fused only when its producer clamped to finite
    bounds and ran fused (conv2d_nhwc_trusting): never after a relu."""
    m = nn.Sequential(_ConvThen(nn.Conv2d(4, 12, 3, padding=1), KEEP_NAN_POSTS[post]),
                      _ConvThen(nn.Conv2d(12, 6, 3, stride=2, padding=1), KEEP_NAN_POSTS[post]))
    m = m.eval()
    x = torch.randn(1, 4, 8, 8)
    traced = traced_warm(m, x)
    out, fused, unfused, trusted = _guard_counts(traced, x)
    assert_outputs_close(out, m(x))
    assert (fused, unfused, trusted) == ((1, 1, 0) if post == "relu" else (2, 0, 1))

    big = float(torch.finfo(torch.float32).max) / 2  # finite, but conv(x) may overflow
    for bad in (float("nan"), float("inf"), -float("inf"), big):
        xb = x.clone()
        xb[0, 1, 2, 3] = bad
        out, fused, unfused, trusted = _guard_counts(traced, xb)
        expected = m(xb)
        assert (fused, unfused, trusted) == (0, 2, 0), bad
        assert_outputs_close(out, expected, equal_nan=True)
