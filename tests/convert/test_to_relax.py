"""torch_tvm.to_relax: whole graphs to a tvm.IRModule."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torchvision
import tvm
from tvm import relax

import torch_tvm
from conftest import fresh_function


def _main(mod):
    names = [gv.name_hint for gv in mod.functions.keys()]
    assert "main" in names, names
    return mod["main"]


def _param_shapes(func):
    return [tuple(int(d) for d in p.ty.shape.values) for p in func.params]


def _ret_shape(func):
    return tuple(int(d) for d in func.ret_ty.shape.values)


def _run_vm(mod, *inputs):
    """Compile with TVM's own default pipeline (not torch_tvm's) and run."""
    ex = tvm.compile(mod, target="llvm")
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(t.contiguous().numpy()) for t in inputs])
    if isinstance(out, tvm.runtime.Tensor):
        return torch.from_numpy(out.numpy())
    return [torch.from_numpy(o.numpy()) for o in out]


def _mlp(x, w):
    return torch.softmax(torch.relu(x @ w) * 2.0 + 1.0, -1)


def test_traced_function():
    x, w = torch.randn(3, 7), torch.randn(7, 5)
    mod = torch_tvm.to_relax(_mlp, (x, w))
    assert isinstance(mod, tvm.IRModule)
    main = _main(mod)
    assert _param_shapes(main) == [(3, 7), (7, 5)]
    assert _ret_shape(main) == (3, 5)
    text = mod.script()
    assert "R.matmul" in text and "R.nn.softmax" in text and "R.nn.relu" in text
    torch.testing.assert_close(_run_vm(mod, x, w), _mlp(x, w), rtol=1e-5, atol=1e-6)


def test_scripted_function_without_int_lists():
    x, w = torch.randn(3, 7), torch.randn(7, 5)
    scripted = torch.jit.script(fresh_function(_mlp))
    mod = torch_tvm.to_relax(scripted, [x, w])
    assert _param_shapes(_main(mod)) == [(3, 7), (7, 5)]
    torch.testing.assert_close(_run_vm(mod, x, w), _mlp(x, w), rtol=1e-5, atol=1e-6)


def _branchy_split(x, y):
    a, b = torch.split(x + y, [2, 3], 1)
    return torch.cat([torch.sigmoid(a), b * 3.0], 1).permute(1, 0)


def test_scripted_function_with_int_lists():
    # Scripted graphs carry int lists ([2, 3], permute dims) as
    # prim::ListConstruct of constants until constant propagation runs.
    x, y = torch.randn(4, 5), torch.randn(4, 5)
    scripted = torch.jit.script(fresh_function(_branchy_split))
    mod = torch_tvm.to_relax(scripted, [x, y])
    assert isinstance(mod, tvm.IRModule)
    main = _main(mod)
    assert _param_shapes(main) == [(4, 5), (4, 5)]
    assert _ret_shape(main) == (5, 4)
    torch.testing.assert_close(_run_vm(mod, x, y), _branchy_split(x, y), rtol=1e-5, atol=1e-6)


def test_specialises_to_the_given_shapes():
    small, large = torch.randn(2, 7), torch.randn(6, 7)
    w = torch.randn(7, 5)
    assert _param_shapes(_main(torch_tvm.to_relax(_mlp, (small, w))))[0] == (2, 7)
    assert _param_shapes(_main(torch_tvm.to_relax(_mlp, (large, w))))[0] == (6, 7)


class _SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, stride=2, groups=2), nn.Hardswish())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16 * 3 * 3, 10))

    def forward(self, x):
        return torch.log_softmax(self.head(self.features(x)), -1)


def _small_model():
    torch.manual_seed(0)
    model = _SmallConvNet().eval()
    model.features[1].running_mean.uniform_(-0.3, 0.3)
    model.features[1].running_var.uniform_(0.5, 2.0)
    return model


def test_module_compiles_with_tvm_and_matches_eager():
    model = _small_model()
    x = torch.randn(2, 3, 15, 17)
    mod = torch_tvm.to_relax(model, (x,))
    main = _main(mod)
    # Weights are frozen into the module: the only parameter is the input.
    assert _param_shapes(main) == [(2, 3, 15, 17)]
    assert _ret_shape(main) == (2, 10)
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_run_vm(mod, x), expected, rtol=1e-4, atol=1e-5)


def test_script_module_is_frozen_and_converted():
    model = _small_model()
    x = torch.randn(1, 3, 16, 16)
    mod = torch_tvm.to_relax(torch.jit.script(model), (x,))
    main = _main(mod)
    assert _param_shapes(main) == [(1, 3, 16, 16)]
    with torch.no_grad():
        expected = model(x)
    torch.testing.assert_close(_run_vm(mod, x), expected, rtol=1e-4, atol=1e-5)


def test_resnet18_small_input_structure():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 32, 32)
    mod = torch_tvm.to_relax(model, (x,))
    assert isinstance(mod, tvm.IRModule)
    main = _main(mod)
    assert _param_shapes(main) == [(1, 3, 32, 32)]
    assert _ret_shape(main) == (1, 1000)
    text = mod.script()
    # 17 convolutions on the main path + 3 downsample projections.
    assert text.count("R.nn.conv2d(") == 20
    assert text.count("R.nn.max_pool2d(") == 1
    assert text.count("R.nn.adaptive_avg_pool2d(") == 1
    assert "R.nn.relu(" in text
    relax.analysis.well_formed(mod)  # raises on the first violation


def test_unsupported_ops_are_named_in_the_error():
    for op in ("aten::cumprod", "aten::erfinv"):
        assert op not in torch_tvm.supported_ops()

    def fn(x):
        return torch.erfinv(torch.cumprod(x, 0).tanh()) + 1.0

    with pytest.raises(RuntimeError) as info:
        torch_tvm.to_relax(fn, (torch.randn(3, 4),))
    message = str(info.value)
    assert "aten::cumprod" in message and "aten::erfinv" in message, message
    assert "aten::tanh" not in message and "aten::add" not in message, message


def test_supported_ops_lists_the_documented_converters():
    ops = set(torch_tvm.supported_ops())
    documented = {
        "aten::add.Tensor", "aten::add.Scalar", "aten::sub.Tensor", "aten::mul.Tensor",
        "aten::div.Tensor", "aten::rsub.Scalar", "aten::_convolution", "aten::conv2d",
        "aten::conv1d", "aten::conv2d.padding", "aten::conv_transpose2d.input",
        "aten::batch_norm", "aten::layer_norm", "aten::group_norm", "aten::relu",
        "aten::threshold", "aten::clamp", "aten::hardtanh", "aten::sigmoid", "aten::tanh",
        "aten::gelu", "aten::silu", "aten::hardswish", "aten::hardsigmoid", "aten::max_pool2d",
        "aten::avg_pool2d", "aten::adaptive_avg_pool2d", "aten::linear", "aten::addmm",
        "aten::matmul", "aten::mm", "aten::bmm", "aten::t", "aten::transpose.int",
        "aten::permute", "aten::flatten.using_ints", "aten::reshape", "aten::view",
        "aten::contiguous", "aten::cat", "aten::chunk", "aten::split.Tensor",
        "aten::split_with_sizes", "aten::squeeze", "aten::squeeze.dim", "aten::unsqueeze",
        "aten::mean.dim", "aten::sum.dim_IntList", "aten::softmax.int", "aten::log_softmax.int",
        "aten::max.dim", "aten::dropout", "aten::feature_dropout",
    }
    assert documented <= ops, sorted(documented - ops)
