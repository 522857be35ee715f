"""NaN and infinity through every TVM kernel that takes a max or a min: eager
PyTorch propagates NaN through relu, clamp, maximum/minimum and max pooling;
TVM's compare-select max dropped it (relu(nan) gave 0)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import torch_tvm
from conftest import GROUP_KIND, assert_outputs_close, run_jitted, jit

NAN, INF = float("nan"), float("inf")


def _with_specials(*shape):
    x = torch.randn(*shape)
    flat = x.view(-1)
    n = flat.numel()
    for k, v in enumerate([NAN, INF, -INF, -0.0, NAN]):
        flat[(k * 7919) % n] = v
    return x


CASES = {
    "relu": (lambda x: torch.relu(x * 1.0), (2, 3, 9, 9)),
    "clamp": (lambda x: torch.clamp(x * 1.0, -1.0, 1.0), (4, 33)),
    "clamp_min": (lambda x: torch.clamp(x + 0.0, min=0.5), (4, 33)),
    "relu6": (lambda x: F.relu6(x * 1.0), (4, 33)),
    "hardtanh": (lambda x: F.hardtanh(x * 1.0), (4, 33)),
    "hardsigmoid": (lambda x: F.hardsigmoid(x * 1.0), (4, 33)),
    "maximum_nan_left": (lambda x: torch.maximum(x * 1.0, torch.zeros(33)), (4, 33)),
    "minimum_nan_right": (lambda x: torch.minimum(torch.zeros(4, 1), x * 1.0), (4, 33)),
    "max_pool": (lambda x: F.max_pool2d(x * 1.0, 2), (2, 3, 8, 8)),
    "max_pool_pad_ceil": (lambda x: F.max_pool2d(x * 1.0, 3, 2, 1, ceil_mode=True), (1, 4, 9, 9)),
    "max_pool_dilated": (lambda x: F.max_pool2d(x * 1.0, 2, 1, 0, dilation=2), (1, 4, 7, 7)),
    "amax_last": (lambda x: torch.amax(x * 1.0, -1), (4, 33)),
    "amax_inner": (lambda x: torch.amax(x * 1.0, (0, 2)), (3, 5, 7)),
    "amin_last": (lambda x: torch.amin(x * 1.0, -1), (4, 33)),
    "max_dim": (lambda x: torch.max(x * 1.0, 1), (4, 33)),
    "argmax": (lambda x: torch.argmax(x * 1.0, -1), (4, 33)),
    "max_full": (lambda x: torch.max(x * 1.0), (5, 11)),
}


@pytest.mark.parametrize("opt_level", [3, 0])
@pytest.mark.parametrize("name", sorted(CASES))
def test_nan_and_inf_propagate_as_in_eager(name, opt_level):
    torch_tvm.enable(min_group_size=1, opt_level=opt_level)
    fn, shape = CASES[name]
    x = _with_specials(*shape)
    before = torch_tvm.stats()
    out, graph = run_jitted(jit(fn, [x]), x)
    assert GROUP_KIND in str(graph), graph
    with torch.no_grad():
        assert_outputs_close(out, fn(x), rtol=1e-6, atol=0.0, equal_nan=True)
    after = torch_tvm.stats()
    assert after["fallback_calls"] == before["fallback_calls"]
    assert after["compile_failures"] == before["compile_failures"]


def test_max_pool_of_a_channels_last_input_keeps_nan():
    torch_tvm.enable(min_group_size=1)
    fn = lambda x: F.max_pool2d(x * 1.0, 3, 2, 1)  # noqa: E731
    x = _with_specials(1, 24, 9, 9).contiguous(memory_format=torch.channels_last)
    out, graph = run_jitted(jit(fn, [x]), x)
    assert GROUP_KIND in str(graph), graph
    with torch.no_grad():
        assert_outputs_close(out, fn(x), rtol=1e-6, atol=0.0, equal_nan=True)


def test_relu_of_negative_zero_matches_eager_bitwise():
    torch_tvm.enable(min_group_size=1)
    x = torch.tensor([-0.0, 0.0, -1.0, NAN, INF, -INF] * 4)
    fn = lambda t: torch.relu(t * 1.0)  # noqa: E731
    out, _ = run_jitted(jit(fn, [x]), x)
    with torch.no_grad():
        ref = fn(x)
    assert torch.equal(torch.signbit(out), torch.signbit(ref))
    assert_outputs_close(out, ref, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool_windows_at_the_edges_keep_nan_and_minus_inf(channels_last):
    """The padded positions of a unit-dilation window read a clamped edge
    element: a NaN or -inf there must come out exactly as in eager, and a
    window of -inf only gives -inf (not the lowest finite float)."""
    torch_tvm.enable(min_group_size=1)
    x = torch.full((1, 16, 9, 9), -INF)
    x[0, 0, 0, 0] = NAN
    x[0, 1, 8, 8] = NAN
    x[0, 2, 0, 8] = 5.0
    x[0, 3, 4] = NAN
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for fn in (lambda t: F.max_pool2d(t * 1.0, 3, 2, 1),
               lambda t: F.max_pool2d(t * 1.0, 2, 2, 1, ceil_mode=True)):
        out, graph = run_jitted(jit(fn, [x]), x)
        assert GROUP_KIND in str(graph), graph
        with torch.no_grad():
            assert_outputs_close(out, fn(x), rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("shape,dim", [((2, 5), -1), ((3, 1000), -1), ((4, 37, 3), 1),
                                       ((2, 3, 64), 1), ((2, 3, 4), 0), ((3, 17, 33), 1)])
@pytest.mark.parametrize("dtype,opt_level", [(torch.float32, 3), (torch.float32, 0),
                                             (torch.float64, 3)])
def test_max_dim_ties_nan_and_minus_inf_rows_take_the_first_index(shape, dim, dtype, opt_level):
    """torch.max(x, dim): a NaN wins and gives its first index, ties and rows
    of -inf give the first index, on the last axis and on inner axes (once a
    reducer identity of the lowest finite float gave -3.4e38 and index 2^63-1
    for a row of -inf, and a vectorised inner-axis argmax kept the last tie)."""
    torch_tvm.enable(min_group_size=1, opt_level=opt_level)
    edge = torch.full(shape, -INF, dtype=dtype)
    edge[1, ..., 0] = NAN
    edge[0, 1] = NAN
    edge.view(-1)[-1] = 2.0
    ties = torch.randint(-2, 2, shape).to(dtype)
    ties.view(-1)[3] = NAN
    fn = lambda t: torch.max(t * 1.0, dim)  # noqa: E731
    for x in (edge, ties):
        (values, indices), graph = run_jitted(jit(fn, [x]), x)
        assert GROUP_KIND in str(graph), graph
        ref = fn(x)
        assert torch.equal(indices, ref.indices)
        assert_outputs_close(values, ref.values, rtol=0, atol=0, equal_nan=True)


class _ConvEpilogue(torch.nn.Module):
    def __init__(self, epilogue, residual=False):
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.skip = torch.nn.Conv2d(4, 8, 1)
        self.epilogue, self.residual = epilogue, residual

    def forward(self, x):
        y = self.conv(x)
        if self.residual:
            y = y + self.skip(x)
        return self.epilogue(y)


class _LinearEpilogue(torch.nn.Module):
    def __init__(self, epilogue):
        super().__init__()
        self.fc = torch.nn.Linear(12, 16)
        self.epilogue = epilogue

    def forward(self, x):
        return self.epilogue(self.fc(x))


_EPILOGUES = {
    "relu": torch.relu, "relu6": F.relu6, "hardtanh": lambda y: F.hardtanh(y, -0.5, 0.5),
    "clamp_min": lambda y: torch.clamp(y, min=0.0), "sigmoid": torch.sigmoid, "tanh": torch.tanh,
    "silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda y: F.gelu(y, approximate="tanh"),
}


@pytest.mark.parametrize("kind", ["conv", "conv_residual", "linear", "conv_winograd",
                                  "conv_residual_winograd"])
@pytest.mark.parametrize("name", sorted(_EPILOGUES))
def test_nan_survives_every_fused_epilogue(kind, name):
    """A NaN in a conv/linear input reaches the output through every epilogue
    the oneDNN offload can fuse (relu and clamp are not fused by default: the
    oneDNN post-ops drop NaN; benchmarks/nan_postops.md has the cost), and
    through the Winograd kernels, whose output transform fuses bias, residual
    and relu (torch_tvm/_winograd.py)."""
    winograd = kind.endswith("_winograd")
    torch_tvm.enable(winograd="F4" if winograd else "off")
    kind = kind.removesuffix("_winograd")
    epilogue = _EPILOGUES[name]
    if kind == "linear":
        model, x = _LinearEpilogue(epilogue).eval(), _with_specials(3, 12)
    else:
        model = _ConvEpilogue(epilogue, residual=(kind == "conv_residual")).eval()
        x = _with_specials(1, 4, 9, 9)
    before = torch_tvm.stats()["kernels"]
    with torch.no_grad():
        out, graph = run_jitted(jit(model, [x]), x)
        ref = model(x)
    assert GROUP_KIND in str(graph), graph
    assert ref.isnan().any()  # the case really carries a NaN to the output
    assert_outputs_close(out, ref, rtol=1e-4, atol=1e-5, equal_nan=True)
    after = torch_tvm.stats()["kernels"]
    calls = "linear_calls" if kind == "linear" else \
        "winograd_calls" if winograd else "conv2d_calls"
    assert after[calls] > before[calls]  # the oneDNN (or Winograd) kernel ran
