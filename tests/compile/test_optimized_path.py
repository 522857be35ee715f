"""The CPU performance path is actually taken: asserted from counters and from
the compiled IR, never from timing (timing lives in benchmarks/)."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn as nn
import tvm
from tvm import relax

import torch_tvm
from torch_tvm import _build
from conftest import run_tvm


def _kernels():
    return dict(torch_tvm.stats()["kernels"])


def _delta(before, after):
    return {k: after[k] - before[k] for k in after}


def _kernel_calls_of(model, x):
    """Runs `model` through torch_tvm (checked against eager); the kernel
    counter increase (1 profiling call in PyTorch, then 2 TVM calls)."""
    before = _kernels()
    out = run_tvm(model, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    return _delta(before, _kernels())


class _ResidualBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        y = torch.relu(self.b2(self.c2(y)) + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))


def _randomize_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)


def test_conv_bn_relu_residual_and_linear_run_as_prepacked_onednn_kernels():
    torch_tvm.enable(winograd="off")  # the oneDNN path (the Winograd one: test_winograd.py)
    model = _ResidualBlock().eval()
    _randomize_bn(model)
    d = _kernel_calls_of(model, torch.randn(2, 8, 13, 11))
    # 2 convs (BN folded, residual add + relu fused) and 1 linear per TVM call,
    # weights prepacked once.
    assert d["conv2d_calls"] == 4, d
    assert d["linear_calls"] == 2, d
    assert d["prepacked_weights"] == 3, d
    assert d["layout_copies"] == 0, d


class _InvertedResidual(nn.Module):
    """MobileNetV2's shape: y feeds a conv and the residual add."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = (nn.Conv2d(8, 8, 1) for _ in range(3))

    def forward(self, x):
        y = self.a(x)
        return y + self.b(torch.relu(self.c(y)))


def test_a_conv_output_read_twice_is_computed_once():
    d = _kernel_calls_of(_InvertedResidual().eval(), torch.randn(1, 8, 6, 6))
    assert d["prepacked_weights"] == 3 and d["conv2d_calls"] == 6, d  # 3 convs x 2 TVM calls


def test_opt_level_0_uses_plain_tvm_code():
    torch_tvm.enable(opt_level=0)
    d = _kernel_calls_of(_ResidualBlock().eval(), torch.randn(1, 8, 6, 6))
    assert d["conv2d_calls"] == 0 and d["linear_calls"] == 0, d


def _lowered(fn, inputs, opt_level=3):
    mod = torch_tvm.to_relax(fn, inputs)
    target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2})
    with target, tvm.transform.PassContext(opt_level=opt_level):
        return _build._pipeline(opt_level)(mod)


def _prim_funcs(mod):
    return [(gv.name_hint, f) for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)]


def test_every_generated_kernel_gets_a_parallel_vectorised_schedule():
    def f(x, y):
        z = torch.relu(x * 2.0 + y)
        z = torch.nn.functional.max_pool2d(z, 2)
        return torch.softmax(z.flatten(1), -1) + torch.sigmoid(z).mean()

    mod = _lowered(f, [torch.randn(2, 16, 32, 32), torch.randn(2, 16, 32, 32)])
    funcs = _prim_funcs(mod)
    assert funcs
    for name, func in funcs:
        assert func.attrs is not None and func.attrs.get("tirx.is_scheduled"), name
        text = func.script()
        assert "T.parallel" in text, f"{name} is not parallel:\n{text}"
    vectorised = [name for name, func in funcs if "T.vectorized" in func.script()]
    assert vectorised, [n for n, _ in funcs]


def test_nhwc_pooling_reduces_whole_channel_vectors():
    """After a conv the pool runs in NHWC: the window loops sit outside a
    vectorised channel loop, and the init is hoisted out of them."""
    model = nn.Sequential(nn.Conv2d(3, 32, 3), nn.MaxPool2d(3, 2, 1), nn.AvgPool2d(2)).eval()
    mod = _lowered(model, [torch.randn(1, 3, 20, 20)])
    pools = {name: f.script() for name, f in _prim_funcs(mod) if "pool" in name}
    assert len(pools) == 2, list(pools)
    for name, text in pools.items():
        assert "T.parallel" in text and "T.vectorized" in text, f"{name}:\n{text}"
        assert "_init" in text, f"{name}: init not hoisted:\n{text}"


def test_rgb_input_to_nhwc_is_vectorised_along_its_rows():
    mod = _lowered(nn.Conv2d(3, 16, 3).eval(), [torch.randn(2, 3, 32, 32)])
    nchw_in = "T.Buffer((T.int64(2), T.int64(3), T.int64(32), T.int64(32))"
    (text,) = [f.script() for name, f in _prim_funcs(mod)
               if "transpose" in name and nchw_in in f.script()]
    assert "T.unroll(T.int64(3))" in text and re.search(r"T.vectorized\(T.int64\((8|16)\)\)", text), text


def test_untouched_pipeline_leaves_naive_loops():
    """The control for the test above: without our rules nothing is parallel."""
    def f(x, y):
        return torch.relu(x * 2.0 + y)

    mod = _lowered(f, [torch.randn(2, 16, 32, 32), torch.randn(2, 16, 32, 32)], opt_level=0)
    for name, func in _prim_funcs(mod):
        assert "T.parallel" not in func.script(), name


def test_linear_gelu_is_one_kernel_call():
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)).eval()
    x = torch.randn(3, 16)
    mod = _lowered(model, [x])
    text = mod["main"].script()
    assert text.count("torch_tvm.kernels.linear") == 2, text
    assert not re.search(r"gelu", " ".join(n for n, _ in _prim_funcs(mod))), _prim_funcs(mod)
    before = _kernels()
    out = run_tvm(model, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    assert _delta(before, _kernels())["linear_calls"] == 4  # 2 linears x 2 TVM calls


def test_attention_matmuls_go_to_blas():
    q, k, v = (torch.randn(1, 2, 7, 8) for _ in range(3))

    def f(q, k, v):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v) * 2.0

    before = _kernels()
    out = run_tvm(f, q, k, v)
    torch.testing.assert_close(out, f(q, k, v), rtol=1e-4, atol=1e-5)
    assert _delta(before, _kernels())["matmul_calls"] == 4  # q@k^T and p@v, 2 TVM calls


class _Embed(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 8)
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        return self.fc(torch.relu(self.emb(ids) * 2.0))


def test_embedding_is_bounds_checked_not_silently_wrong():
    model = _Embed().eval()
    ids = torch.randint(0, 50, (2, 7))
    out = run_tvm(model, ids)
    with torch.no_grad():
        torch.testing.assert_close(out, model(ids), rtol=1e-4, atol=1e-5)
    module = torch.jit.trace(model, ids)
    with torch.no_grad():
        for _ in range(3):
            module(ids)
        failures = torch_tvm.stats()["compile_failures"]
        bad = ids.clone()
        bad[0, 0] = 50  # out of range: PyTorch raises, so must torch_tvm
        with pytest.raises(Exception, match="out of range|index"):
            module(bad)
        # Bad data is not a bad spec: the compiled code keeps serving good inputs.
        fallbacks = torch_tvm.stats()["fallback_calls"]
        torch.testing.assert_close(module(ids), model(ids), rtol=1e-4, atol=1e-5)
        assert torch_tvm.stats()["compile_failures"] == failures
        assert torch_tvm.stats()["fallback_calls"] == fallbacks
