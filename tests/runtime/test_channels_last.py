"""Channels-last tensors in and out of a group, without copies.

A channels-last input goes to TVM as its NHWC view (no copy); an output that
eager produces channels-last comes back with eager's strides. The values, the
strides and the copy counter are all checked against eager.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torch_tvm
from conftest import jit, run_jitted

CL = torch.channels_last


def _elementwise(x, y):
    return torch.relu(x + y) * 2 - 1


def _pool_then_mean(x):
    p = F.max_pool2d(x, 3, 2, 1)
    return p, p.mean((2, 3))


def _conv_net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(5, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                               torch.nn.ReLU(), torch.nn.AvgPool2d(2),
                               torch.nn.Conv2d(8, 6, 1)).eval()


def _input_copies():
    return torch_tvm.stats()["input_copies"]


def _check_like_eager(outs, refs):
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
        assert out.stride() == ref.stride(), (out.stride(), ref.stride())


@pytest.mark.parametrize("fn,n_in", [(_elementwise, 2), (_pool_then_mean, 1), (_conv_net(), 1)],
                         ids=["elementwise", "pool_mean", "conv_net"])
def test_channels_last_in_and_out_like_eager_without_copies(fn, n_in):
    torch_tvm.enable(min_group_size=1)
    xs = [torch.randn(2, 5, 9, 11).to(memory_format=CL) for _ in range(n_in)]
    module = jit(fn, xs)
    run_jitted(module, *xs)
    before = _input_copies()
    out, _ = run_jitted(module, *xs, calls=2)
    assert _input_copies() == before
    with torch.no_grad():
        ref = fn(*xs)
    outs, refs = (out, ref) if isinstance(ref, tuple) else ((out,), (ref,))
    _check_like_eager(outs, refs)
    # The pooled mean is 2-d: contiguous, as eager gives it.
    assert all(o.is_contiguous() or o.is_contiguous(memory_format=CL) for o in outs)


def test_mixed_and_changing_memory_formats():
    torch_tvm.enable(min_group_size=1)
    x = torch.randn(2, 5, 9, 11)
    y = torch.randn(2, 5, 9, 11)
    module = jit(_elementwise, [x.to(memory_format=CL), y])
    for a, b in [(x.to(memory_format=CL), y), (x, y), (x, y.to(memory_format=CL)),
                 (x.to(memory_format=CL), y.to(memory_format=CL))]:
        out, _ = run_jitted(module, a, b)
        torch.testing.assert_close(out, _elementwise(a, b))


def test_size_one_dims_are_plain_contiguous():
    # (N, C, 1, 1) is both contiguous and channels-last: no special path, no copy.
    torch_tvm.enable(min_group_size=1)
    x = torch.randn(3, 7, 1, 1).to(memory_format=CL)
    module = jit(_elementwise, [x, x])
    run_jitted(module, x, x)
    before = _input_copies()
    out, _ = run_jitted(module, x, x)
    torch.testing.assert_close(out, _elementwise(x, x))
    assert _input_copies() == before
