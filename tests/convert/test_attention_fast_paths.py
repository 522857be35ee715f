"""PyTorch's attention fast paths: in eval under no_grad, nn.MultiheadAttention
traces to aten::_native_multi_head_attention and nn.TransformerEncoderLayer
to aten::_transformer_encoder_layer_fwd. Both convert into one TVM group,
and match eager, masks and fully masked rows (NaN in eager) included."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import torch_tvm
from conftest import GROUP_KIND, assert_outputs_close, group_counters, run_jitted

B, L, S, E, H = 2, 7, 5, 32, 4


class _Mha(nn.Module):
    def __init__(self, cross, **kwargs):
        super().__init__()
        self.mha = nn.MultiheadAttention(E, H, batch_first=True)
        self.cross, self.kwargs = cross, kwargs

    def forward(self, q, kv, mask, key_padding):
        kv = kv if self.cross else q
        kwargs = dict(self.kwargs)
        if kwargs.pop("use_mask", False):
            kwargs["attn_mask"] = mask
        if kwargs.pop("use_padding", False):
            kwargs["key_padding_mask"] = key_padding
        out, weights = self.mha(q, kv, kv, **kwargs)
        return out if weights is None else (out, weights)


def _inputs(cross, fully_masked):
    g = torch.Generator().manual_seed(11)
    q = torch.randn(B, L, E, generator=g)
    kv = torch.randn(B, S if cross else L, E, generator=g)
    s = kv.shape[1]
    mask = torch.ones(L, s, dtype=torch.bool).triu(1)
    padding = torch.zeros(B, s, dtype=torch.bool)
    padding[0, s - 2:] = True
    if fully_masked:
        mask[3] = True        # query 3 sees no key: NaN in eager
        padding[1] = True     # batch 1 sees no key
    return q, kv, mask, padding


def _check(module, inputs):
    traced = torch.jit.trace(module, inputs, check_trace=False)
    with torch.no_grad():
        expected = module(*inputs)
    out, graph = run_jitted(traced, *inputs, calls=3)
    assert GROUP_KIND in str(graph), graph
    report = torch_tvm.explain(traced, inputs)
    fast = {"aten::_native_multi_head_attention", "aten::_transformer_encoder_layer_fwd"}
    assert not fast & {o["op"] for o in report.outside}, str(report)
    for gid, c in group_counters(graph).items():
        assert c["fallback_calls"] == 0, (gid, c["failures"])
    assert_outputs_close(out, expected, rtol=1e-4, atol=1e-5, equal_nan=True)
    return out


@pytest.mark.parametrize("cross", [False, True])
@pytest.mark.parametrize("kwargs", [
    {}, {"need_weights": False}, {"average_attn_weights": False},
    {"use_mask": True}, {"use_mask": True, "need_weights": False},
    {"use_padding": True}, {"use_mask": True, "use_padding": True},
], ids=lambda k: "-".join(sorted(k)) or "plain")
def test_native_multi_head_attention(cross, kwargs):
    torch_tvm.enable(min_group_size=1)
    module = _Mha(cross, **kwargs).eval()
    inputs = _inputs(cross, fully_masked=False)
    with torch.no_grad():
        traced = torch.jit.trace(module, inputs, check_trace=False)
    # PyTorch takes its fast path for self-attention only; cross-attention is
    # the slow path's composition (linear, bmm, softmax...), checked the same.
    assert ("aten::_native_multi_head_attention" in str(traced.inlined_graph)) != cross
    with torch.no_grad():
        _check(module, inputs)


@pytest.mark.parametrize("use", ["use_mask", "use_padding"])
def test_fully_masked_rows_are_nan_as_in_eager(use):
    torch_tvm.enable(min_group_size=1)
    module = _Mha(False, **{use: True}).eval()
    inputs = _inputs(False, fully_masked=True)
    with torch.no_grad():
        out, weights = _check(module, inputs)
        assert out.isnan().any() and weights.isnan().any()  # the case is really exercised


def test_float_attention_mask_counts_non_zero_as_masked():
    """ATen casts a float mask to bool (non-zero = masked); nn.MultiheadAttention
    turns a bool mask into a float one of 0 and -inf before the fast path."""
    torch_tvm.enable(min_group_size=1)
    module = _Mha(False, use_mask=True).eval()
    q, kv, mask, padding = _inputs(False, fully_masked=False)
    fmask = torch.zeros(L, L).masked_fill(mask, float("-inf"))
    with torch.no_grad():
        _check(module, (q, kv, fmask, padding))


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("causal", [False, True])
def test_transformer_encoder_layer_fast_path(norm_first, activation, causal):
    layer = nn.TransformerEncoderLayer(E, H, 64, dropout=0.0, activation=activation,
                                       batch_first=True, norm_first=norm_first)
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    mask = nn.Transformer.generate_square_subsequent_mask(L) if causal else None

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder

        def forward(self, x):
            return self.encoder(x, mask=mask) if causal else self.encoder(x)

    x = torch.randn(B, L, E, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        traced = torch.jit.trace(Wrapped().eval(), x, check_trace=False)
        assert "aten::_transformer_encoder_layer_fwd" in str(traced.inlined_graph)
        _check(Wrapped().eval(), (x,))
