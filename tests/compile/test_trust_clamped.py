"""_trust_clamped_inputs (torch_tvm/_offload.py) alone, on before / expected
Relax IR, then end to end: a conv whose input a clamp-bounded conv wrote runs
its NaN-dropping clamp fused without scanning that input, and only when the
producer itself ran fused (counters), keeping NaN as eager does."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import tvm
import tvm_ffi
from tvm import relax

import torch_tvm
from torch_tvm import _offload
from conftest import assert_outputs_close, call_counting, traced_warm

F32 = "float32"
_prepack = tvm_ffi.get_global_func("torch_tvm.kernels.conv2d_prepack")


def _conv(cin, cout, k, groups, hw, unary, scalars=()):
    """A prepacked conv handle (NHWC input 1 x hw x hw x cin, 'same' padding)."""
    w = torch.randn(cout, k, k, cin // groups)
    return _prepack(tvm_ffi.from_dlpack(w), tvm_ffi.from_dlpack(torch.randn(cout)),
                    [k // 2, k // 2], [1, 1], [1, 1], groups, [1, hw, hw, cin], unary,
                    list(scalars), "", False)


def _chain(first, second, names, between=None):
    """main(x): y = first(x); [y = between(y)]; z = second(y), by kernel name."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 6, 6, 4), F32))
    with bb.function("main", [x]):
        with bb.dataflow():
            y = bb.emit(relax.op.call_pure_packed(names[0], x, relax.prim_value(first),
                                                  ty_args=relax.TensorType((1, 6, 6, 12), F32)))
            if between is not None:
                y = bb.emit(between(y))
            z = bb.emit_output(relax.op.call_pure_packed(
                names[1], y, relax.prim_value(second),
                ty_args=relax.TensorType((1, 6, 6, 12), F32)))
        bb.emit_func_output(z)
    return bb.get()


def _apply(mod):
    _offload._globals()
    out = tvm.IRModule()
    out["main"] = _offload._trust_clamped_inputs(mod["main"])
    return out


CONV, TRUSTING = _offload.CONV, _offload.CONV_TRUSTING


def test_consumer_of_a_clamping_conv_trusts_its_input():
    producer = _conv(4, 12, 1, 1, 6, "hardtanh_keep_nan", [0.0, 6.0])
    consumer = _conv(12, 12, 3, 12, 6, "hardtanh_keep_nan", [0.0, 6.0])
    tvm.ir.assert_structural_equal(_apply(_chain(producer, consumer, (CONV, CONV))),
                                   _chain(producer, consumer, (CONV, TRUSTING)))


@pytest.mark.parametrize("why", ["producer_relu", "producer_unfused_clamp", "consumer_none",
                                 "op_between"])
def test_left_alone(why):
    """A relu has no upper bound; a clamp fused as a oneDNN post-op (keep_nan
    off) gives no guard; a consumer without a NaN-dropping post-op has nothing
    to fuse; an op between them is not the producer's output."""
    post = ("hardtanh_keep_nan", [0.0, 6.0])
    producer = {"producer_relu": ("relu_keep_nan", []),
                "producer_unfused_clamp": ("hardtanh", [0.0, 6.0])}.get(why, post)
    consumer = ("none", []) if why == "consumer_none" else post
    p = _conv(4, 12, 1, 1, 6, *producer)
    c = _conv(12, 12, 3, 12, 6, *consumer)
    between = (lambda y: relax.op.multiply(y, relax.const(2.0, F32))) \
        if why == "op_between" else None
    before = _chain(p, c, (CONV, CONV), between)
    tvm.ir.assert_structural_equal(_apply(before), before)


class _Inverted(nn.Module):
    """MobileNetV2's expand -> depthwise, relu6 after each."""

    def __init__(self):
        super().__init__()
        self.expand = nn.Conv2d(4, 24, 1)
        self.dw = nn.Conv2d(24, 24, 3, padding=1, groups=24)

    def forward(self, x):
        return F.relu6(self.dw(F.relu6(self.expand(x))))


def test_depthwise_after_expand_trusts_only_a_fused_producer():
    torch_tvm.enable(winograd="off")
    m = _Inverted().eval()
    x = torch.randn(1, 4, 10, 10)
    traced = traced_warm(m, x)

    out, n = call_counting(traced, x)
    assert_outputs_close(out, m(x))
    # expand: scanned (input 1/6 of its output) and fused; depthwise: trusted.
    assert n == {"nan_guard_fused_calls": 2, "nan_guard_unfused_calls": 0,
                 "nan_guard_trusted_calls": 1}
    for bad in (float("nan"), float("inf")):
        xb = x.clone()
        xb[0, 2, 4, 4] = bad
        out, n = call_counting(traced, xb)
        expected = m(xb)
        assert_outputs_close(out, expected, equal_nan=True)
        assert torch.isnan(expected).any() == (bad != bad)  # NaN reaches the output
        # The expand conv saw the bad value and ran unfused, so the depthwise
        # conv may not trust its input, and it is not worth scanning.
        assert n == {"nan_guard_fused_calls": 0, "nan_guard_unfused_calls": 2,
                     "nan_guard_trusted_calls": 0}, bad
