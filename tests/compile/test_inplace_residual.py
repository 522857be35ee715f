"""AccumulateResidualInPlace: a conv's residual add writes into the residual's
buffer only when nothing can observe it; otherwise into a copy. Each case is
checked against eager and against the in-place counter."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import tvm

import torch_tvm
from torch_tvm import _build
from conftest import run_tvm


@pytest.fixture(autouse=True)
def _onednn_convs():
    """These tests are about the oneDNN conv kernels: no Winograd choice."""
    torch_tvm.enable(winograd="off")
    yield


def _in_place_calls():
    return torch_tvm.stats()["kernels"]["conv2d_in_place_calls"]


def _conv(c=8):
    return nn.Conv2d(c, c, 3, padding=1)


class _Chain(nn.Module):
    """A ResNet block: r = conv_a(x); relu(conv_b(relu(conv_c(r))) + r).
    r's only other reader runs before the add, so r is dead after it."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = _conv(), _conv(), _conv()

    def forward(self, x):
        r = self.a(x)
        return torch.relu(self.b(torch.relu(self.c(r))) + r)


class _TwoConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = _conv(), _conv()


class _ResidualIsConvInput(_TwoConvs):
    """conv(r) + r: the kernel would read r while writing it."""

    def forward(self, x):
        r = self.a(x)
        return self.b(r) + r


class _ResidualReadAfter(_TwoConvs):
    """r is read again after the add, so it must not be overwritten."""

    def forward(self, x):
        r = self.a(x)
        return (self.b(x) + r) * r


class _ResidualIsOutput(_TwoConvs):
    def forward(self, x):
        r = self.a(x)
        return self.b(x) + r, r


class _ResidualIsInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = _conv()

    def forward(self, x):
        return self.a(x) + x


def _check(model, x, expect_in_place_per_call):
    before = _in_place_calls()
    x_before = x.clone()
    out = run_tvm(model, x)  # 1 profiling call in PyTorch, then 2 in TVM
    with torch.no_grad():
        ref = model(x)
    if isinstance(ref, tuple):
        for o, r in zip(out, ref):
            torch.testing.assert_close(o, r, rtol=1e-4, atol=1e-5)
    else:
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # the user's input is untouched
    assert _in_place_calls() - before == 2 * expect_in_place_per_call


def test_dead_residual_is_accumulated_in_place():
    _check(_Chain().eval(), torch.randn(1, 8, 10, 10), 1)


def test_residual_that_is_also_the_conv_input_is_copied():
    _check(_ResidualIsConvInput().eval(), torch.randn(1, 8, 10, 10), 0)


def test_residual_read_after_the_add_is_copied():
    _check(_ResidualReadAfter().eval(), torch.randn(1, 8, 10, 10), 0)


def test_residual_returned_by_the_graph_is_copied():
    _check(_ResidualIsOutput().eval(), torch.randn(1, 8, 10, 10), 0)


def test_graph_input_as_residual_is_copied():
    _check(_ResidualIsInput().eval(), torch.randn(1, 8, 10, 10), 0)


def test_pass_rewrites_only_the_proven_call():
    mod = torch_tvm.to_relax(_Chain().eval(), [torch.randn(1, 8, 10, 10)])
    target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2})
    with target, tvm.transform.PassContext(opt_level=3):
        text = _build._pipeline(3)(mod)["main"].script()
    assert text.count("torch_tvm.kernels.conv2d_add_nhwc_inplace") == 1, text
    assert text.count("torch_tvm.kernels.conv2d_add_nhwc\"") == 0, text
