"""scaled_dot_product_attention with long sequences runs one fused extern
kernel (torch_tvm.kernels.aten_sdpa) inside the TVM group: torch_tvm's packed
attention without a mask (csrc/kernels/gemm/packed_gemm.h, on CPUs with
AVX2/FMA), ATen's fused kernel with one; short ones are spelled out as
matmul / softmax / matmul. Checked against eager and by the counters."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torch_tvm
from conftest import run_tvm, sgemm_supported

# The thresholds in convert/ops/attention.cpp: 128 x 128 scores per head with
# a mask, 64 x 64 without one.
LONG, MEDIUM, SHORT = 128, 64, 16


def _calls(name):
    return torch_tvm.stats()["kernels"][name]


def _qkv(length, ev=8, heads=2):
    torch.manual_seed(0)
    return (torch.randn(1, heads, length, 8), torch.randn(1, heads, length, 8),
            torch.randn(1, heads, length, ev))


_BOOL_MASK = torch.ones(LONG, LONG, dtype=torch.bool).tril()
_FLOAT_MASK = torch.linspace(-1, 1, LONG * LONG).reshape(LONG, LONG)
CASES = {
    "plain": lambda q, k, v: F.scaled_dot_product_attention(q, k, v) + 1.0,
    "causal": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True) + 1.0,
    "scale": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3) + 1.0,
    "bool_mask": lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=_BOOL_MASK) + 1.0,
    "float_mask": lambda q, k, v: F.scaled_dot_product_attention(
        q, k, v, attn_mask=_FLOAT_MASK) + 1.0,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_long_sequences_run_the_fused_kernel(case):
    fn = CASES[case]
    q, k, v = _qkv(LONG, ev=12)
    before = _calls("aten_sdpa_calls"), _calls("matmul_calls"), _calls("sdpa_packed_calls")
    out = run_tvm(fn, q, k, v)
    torch.testing.assert_close(out, fn(q, k, v), rtol=1e-5, atol=1e-5)
    assert _calls("aten_sdpa_calls") - before[0] == 2  # 2 TVM calls (1 profiling call)
    assert _calls("matmul_calls") == before[1]
    # Our packed attention takes the unmasked ones; ATen's kernel the masked.
    packed = 2 if "mask" not in case and sgemm_supported() else 0
    assert _calls("sdpa_packed_calls") - before[2] == packed


@pytest.mark.parametrize("causal", [False, True])
def test_packed_attention_odd_sizes_against_eager(causal):
    """Query and key lengths that differ and are off every block of the
    micro-kernels (130 x 129), depths 40 and 24, batch 3 x 5 heads."""
    torch.manual_seed(1)
    q, k, v = torch.randn(3, 5, 130, 40), torch.randn(3, 5, 129, 40), torch.randn(3, 5, 129, 24)

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal) * 2.0

    before = _calls("sdpa_packed_calls")
    out = run_tvm(fn, q, k, v)
    torch.testing.assert_close(out, fn(q, k, v), rtol=1e-5, atol=1e-5)
    assert _calls("sdpa_packed_calls") - before == (2 if sgemm_supported() else 0)


def test_packed_attention_keeps_nan_rows():
    """A NaN in one query row: that row of the output is NaN, as in eager,
    and the other rows are untouched."""
    q, k, v = _qkv(LONG, ev=12)
    q[0, 1, 5, 3] = float("nan")
    fn = CASES["plain"]
    out = run_tvm(fn, q, k, v)
    expected = fn(q, k, v)
    assert expected[0, 1, 5].isnan().all() and out[0, 1, 5].isnan().all()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_sdpa_kernel_env_forces_aten(monkeypatch):
    """TORCH_TVM_SDPA_KERNEL=aten (read per call) sends even unmasked
    attention to ATen's kernel."""
    monkeypatch.setenv("TORCH_TVM_SDPA_KERNEL", "aten")
    fn = CASES["plain"]
    q, k, v = _qkv(LONG)
    before = _calls("aten_sdpa_calls"), _calls("sdpa_packed_calls")
    out = run_tvm(fn, q, k, v)
    torch.testing.assert_close(out, fn(q, k, v), rtol=1e-5, atol=1e-5)
    assert _calls("aten_sdpa_calls") - before[0] == 2
    assert _calls("sdpa_packed_calls") == before[1]


def test_short_sequences_stay_spelled_out():
    fn = CASES["plain"]
    q, k, v = _qkv(SHORT)
    before = _calls("aten_sdpa_calls"), _calls("matmul_calls")
    out = run_tvm(fn, q, k, v)
    torch.testing.assert_close(out, fn(q, k, v), rtol=1e-4, atol=1e-5)
    assert _calls("aten_sdpa_calls") == before[0]
    assert _calls("matmul_calls") - before[1] == 4  # q@k^T and p@v, 2 TVM calls


def test_medium_sequences_fused_only_without_a_mask():
    """64 tokens: the unmasked attention runs the fused kernel, the masked
    one stays spelled out."""
    q, k, v = _qkv(MEDIUM)
    mask = torch.linspace(-1, 1, MEDIUM * MEDIUM).reshape(MEDIUM, MEDIUM)
    for fn, fused in ((CASES["plain"], 2), (lambda q, k, v: F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask) + 1.0, 0)):
        before = _calls("aten_sdpa_calls"), _calls("matmul_calls")
        out = run_tvm(fn, q, k, v)
        torch.testing.assert_close(out, fn(q, k, v), rtol=1e-5, atol=1e-5)
        assert _calls("aten_sdpa_calls") - before[0] == fused
        assert _calls("matmul_calls") - before[1] == (0 if fused else 4)


def test_fully_masked_rows_match_eager():
    """A row whose keys are all masked: the fused kernel gives eager's result."""
    q, k, v = _qkv(LONG)
    mask = torch.ones(LONG, LONG, dtype=torch.bool)
    mask[3] = False

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask) + 1.0

    out = run_tvm(fn, q, k, v)
    torch.testing.assert_close(out, fn(q, k, v), rtol=1e-5, atol=1e-5, equal_nan=True)
