"""Reductions, norms, softmax and transcendentals on TVM's own kernels
(_legalize + _schedule_reduction) and on the ATen alternative
(_aten_choice): numerics against eager on edge values, the schedule read
from the TIR, and the measured choice."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import tvm

import torch_tvm
from torch_tvm import _aten_choice, _build
from conftest import GROUP_KIND, assert_outputs_close

NAN, INF = float("nan"), float("inf")
EDGES = [NAN, INF, -INF, 1e30, -1e30, 1e-30, 0.0, 88.9, -104.0, 1e-40]


def _edge(*shape, scale=3.0):
    x = torch.randn(*shape) * scale
    flat = x.view(-1)
    n = min(len(EDGES), flat.numel())
    flat[:n] = torch.tensor(EDGES[:n])
    return x


CASES = {
    "softmax_197": (lambda x: torch.softmax(x, -1) * 2, (2, 3, 197)),
    "softmax_row_of_1": (lambda x: torch.softmax(x, -1), (4, 1)),
    "softmax_finite": (lambda x: torch.softmax(x * 10, -1), (4, 33)),
    "log_softmax": (lambda x: torch.log_softmax(x, -1), (2, 197)),
    "max_dim": (lambda x: torch.max(x, -1), (3, 197)),
    "amax_middle": (lambda x: x.amax(1) + 1, (2, 5, 7)),
    "sum_last": (lambda x: x.sum(-1), (3, 197)),
    "mean_hw": (lambda x: x.mean((2, 3)), (1, 8, 14, 14)),
    "mean_hw_keepdim": (lambda x: x.mean((2, 3), keepdim=True) * x, (2, 8, 7, 7)),
    "sum_all": (lambda x: x.sum() + 1, (3, 5)),
    "global_avg_pool": (lambda x: F.adaptive_avg_pool2d(x, 1) + 1, (2, 8, 7, 7)),
    "layer_norm": (lambda x: F.layer_norm(x, (197,)) + x, (3, 197)),
    "layer_norm_2d": (lambda x: F.layer_norm(x, (4, 20)), (3, 4, 20)),
    "group_norm_1": (lambda x: F.group_norm(x, 1) * 1.5 + x, (1, 8, 7, 7)),
    "group_norm_4": (lambda x: F.group_norm(x, 4) + x, (2, 8, 5, 5)),
    "gelu": (lambda x: F.gelu(x) + x, (3, 197)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh") + x, (3, 197)),
    "silu": (lambda x: F.silu(x) + x, (3, 197)),
    "tanh": (lambda x: torch.tanh(x) + x, (3, 197)),
    "sigmoid": (lambda x: torch.sigmoid(x) * x, (3, 197)),
    "mish": (lambda x: F.mish(x) + x, (3, 197)),
    "softplus": (lambda x: F.softplus(x) + x, (3, 197)),
    "exp": (lambda x: torch.exp(x) + 1, (3, 197)),
    "log": (lambda x: torch.log(x.abs()) + 1, (3, 197)),
}


@pytest.fixture
def kernel_choice():
    def set_choice(value):
        _aten_choice.force = value
    yield set_choice
    _aten_choice.force = None


def _run(fn, x):
    module = torch.jit.trace(fn, (x,), check_trace=False)
    with torch.no_grad():
        for _ in range(3):
            out = module(x)
    return out, torch.jit.last_executed_optimized_graph()


@pytest.mark.parametrize("choice", ["tvm", "aten"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_edge_values_match_eager(name, choice, kernel_choice):
    """NaN, +-inf, huge, tiny and subnormal inputs: same result as eager
    (NaN where eager has NaN), in a TVM group, with no fallback."""
    kernel_choice(choice)
    torch_tvm.enable(min_group_size=1)
    fn, shape = CASES[name]
    x = _edge(*shape)
    fallbacks = torch_tvm.stats()["fallback_calls"]
    out, graph = _run(fn, x)
    assert GROUP_KIND in str(graph), graph
    with torch.no_grad():
        assert_outputs_close(out, fn(x), rtol=1e-5, atol=1e-6, equal_nan=True)
    assert torch_tvm.stats()["fallback_calls"] == fallbacks


_ATEN_COUNTER = {"softmax_197": "aten_softmax_calls", "log_softmax": "aten_softmax_calls",
                 "layer_norm": "aten_layer_norm_calls", "group_norm_1": "aten_group_norm_calls",
                 "sum_last": "aten_reduce_calls", "sum_all": "aten_reduce_calls",
                 "mean_hw_keepdim": "aten_reduce_calls", "global_avg_pool": "aten_reduce_calls"}


@pytest.mark.parametrize("name", sorted(_ATEN_COUNTER))
def test_aten_kernel_runs_when_chosen(name, kernel_choice):
    kernel_choice("aten")
    torch_tvm.enable(min_group_size=1)
    before = dict(torch_tvm.stats()["kernels"])
    fn, shape = CASES[name]
    _run(fn, torch.randn(*shape))
    after = torch_tvm.stats()["kernels"]
    key = _ATEN_COUNTER[name]
    assert after[key] - before[key] == 2  # two TVM-group calls after profiling
    chosen = [d for d in _aten_choice.decisions() if d["forced"] and d["choice"] == "aten"]
    assert chosen


@pytest.mark.parametrize("choice", ["tvm", "aten"])
def test_global_pool_of_channels_last_input(choice, kernel_choice):
    """A channels-last input reaches TVM as NHWC and its global pool becomes
    an NHWC pool (SinkPermutes); ATen's mean then reduces axes 1 and 2."""
    kernel_choice(choice)
    torch_tvm.enable(min_group_size=1)
    fn = lambda x: F.adaptive_avg_pool2d(x, 1) + 1  # noqa: E731
    x = _edge(2, 24, 7, 7).contiguous(memory_format=torch.channels_last)
    before = torch_tvm.stats()["kernels"]["aten_reduce_calls"]
    out, graph = _run(fn, x)
    assert GROUP_KIND in str(graph), graph
    with torch.no_grad():
        assert_outputs_close(out, fn(x), rtol=1e-5, atol=1e-6, equal_nan=True)
    calls = torch_tvm.stats()["kernels"]["aten_reduce_calls"] - before
    assert calls == (2 if choice == "aten" else 0)


def test_measured_choice_records_both_times():
    """Unforced, the first build of an op measures both kernels once and keeps
    the faster one (ATen only with a 10% margin)."""
    torch_tvm.enable(min_group_size=1)
    fn, shape = CASES["layer_norm"]
    x = torch.randn(5, 3, 96)  # a shape no other test uses
    _run(lambda t: F.layer_norm(t, (96,)) + t, x)
    (d,) = [d for d in _aten_choice.decisions()
            if d["op"] == "layer_norm" and d["shape"] == [5, 3, 96] and not d["forced"]]
    assert d["tvm_us"] > 0 and d["aten_us"] > 0
    assert d["fusible"]  # the add that reads it could fuse with TVM's kernel
    assert d["choice"] == ("aten" if d["aten_us"] < 0.9 * d["tvm_us"] else "tvm")
    text = str(torch_tvm.explain(torch.jit.trace(lambda t: F.layer_norm(t, (96,)) + t, (x,)), x))
    assert f"kernel choice: layer_norm[5, 3, 96] at {d['threads']} thread(s) -> " \
           f"{d['choice'].upper()} (TVM {d['tvm_us']:.1f} us, ATen {d['aten_us']:.1f} us" in text


def test_op_with_nothing_to_fuse_takes_the_faster_kernel():
    """A sum of a group input whose result leaves the group could not fuse
    with anything: no margin, the faster kernel wins."""
    torch_tvm.enable(min_group_size=1)
    x = torch.randn(3, 7, 130)  # a shape no other test uses
    out, _ = _run(lambda t: t.sum(-1), x)
    torch.testing.assert_close(out, x.sum(-1))
    (d,) = [d for d in _aten_choice.decisions()
            if d["op"] == "sum" and d["shape"] == [3, 7, 130] and not d["forced"]]
    assert not d["fusible"]
    assert d["choice"] == ("aten" if d["aten_us"] < d["tvm_us"] else "tvm")


def test_fusible_calls_finds_tvm_neighbours():
    from tvm import relax  # noqa: PLC0415

    ty = relax.TensorType((4, 8), "float32")
    x = relax.Var("x", ty)
    bb = relax.BlockBuilder()
    with bb.function("main", [x]):
        with bb.dataflow():
            alone = bb.emit(relax.op.sum(x, axis=[1]))
            y = bb.emit(relax.op.nn.relu(x))
            after_relu = bb.emit(relax.op.mean(y, axis=[1]))
            packed = bb.emit(relax.op.call_pure_packed("torch_tvm.kernels.aten_softmax", x, 1, 0,
                                                      ty_args=ty))
            after_extern = bb.emit(relax.op.sum(packed, axis=[1]))
            before_add = bb.emit(relax.op.mean(packed, axis=[1]))
            added = bb.emit(relax.op.add(before_add, alone))
            out = bb.emit_output(relax.Tuple([after_relu, after_extern, added]))
        bb.emit_func_output(out)
    func = bb.get()["main"]
    values = {b.var: b.value for b in func.body.blocks[0].bindings}
    fusible = _aten_choice._fusible_calls(func)
    # `alone` is read by the add, `before_add` feeds it; `after_extern` reads
    # only an extern kernel's result and leaves the function.
    assert all(values[v] in fusible for v in (alone, after_relu, before_add))
    assert values[after_extern].op.name == "relax.sum"
    assert values[after_extern] not in fusible


def _lowered(fn, inputs):
    mod = torch_tvm.to_relax(fn, inputs)
    target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2,
                                "vector-width": torch_tvm._C.host_vector_width()})
    _aten_choice.force = "tvm"
    try:
        with target, tvm.transform.PassContext(opt_level=3):
            return _build._pipeline(3)(mod)
    finally:
        _aten_choice.force = None


def _scripts(mod):
    return {gv.name_hint: f.script() for gv, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc)}


def test_group_norm_with_one_group_splits_its_reduction_across_threads():
    """One row of 64*56*56: chunks reduce in parallel into vector partials
    (two rfactors), instead of one thread (or, as dlight did, every channel
    recomputing the group)."""
    scripts = _scripts(_lowered(lambda x: F.group_norm(x, 1) + x, [torch.randn(1, 64, 56, 56)]))
    (text,) = [t for n, t in scripts.items() if "group_norm" in n]
    assert "_rf_rf" in text, text
    assert "T.parallel" in text and "T.vectorized" in text, text
    assert "reshape" not in text  # the flat view is a no-copy reshape, not index math


def test_layer_norm_rows_run_in_parallel_with_vector_accumulators():
    scripts = _scripts(_lowered(lambda x: F.layer_norm(x, (768,)) + x, [torch.randn(1, 197, 768)]))
    (text,) = [t for n, t in scripts.items() if "layer_norm" in n]
    assert "T.parallel(T.int64(197))" in text, text
    assert "_rf" in text and "T.vectorized" in text, text


def test_softmax_over_197_has_a_whole_vector_body_and_a_tail():
    scripts = _scripts(_lowered(lambda x: torch.softmax(x, -1), [torch.randn(1, 2, 197, 197)]))
    (text,) = [t for n, t in scripts.items() if "softmax" in n]
    assert "T_softmax_max_body_rf" in text and "T_softmax_max_tail" in text, text
    assert "T.where" not in text, text  # no predicated (scalarised) vector loop


class _ConvGroupNormConv(torch.nn.Module):
    """GroupNorm between convolutions runs channels-last (ConvertLayout)."""

    def __init__(self, groups):
        super().__init__()
        self.c1 = torch.nn.Conv2d(16, 16, 1)
        self.gn = torch.nn.GroupNorm(groups, 16)
        self.c2 = torch.nn.Conv2d(16, 16, 1)
        with torch.no_grad():
            self.gn.weight.uniform_(0.5, 1.5)
            self.gn.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.c2(self.gn(self.c1(x)))


@pytest.mark.parametrize("groups", [1, 4])
def test_group_norm_between_convolutions_runs_channels_last(groups):
    """Statistics computed once per (sample, group), not once per channel (the
    dlight rule's recompute): with one group, a vectorised flat row."""
    model = _ConvGroupNormConv(groups).eval()
    x = torch.randn(2, 16, 9, 7)
    scripts = _scripts(_lowered(model, [x]))
    (text,) = [t for n, t in scripts.items() if "group_norm" in n]
    assert "T.Buffer((T.int64(2), T.int64(9), T.int64(7), T.int64(16))" in text, text  # NHWC
    if groups == 1:
        assert "_rf" in text and "T.vectorized" in text, text
    out = run_tvm_model(model, x)
    with torch.no_grad():
        assert_outputs_close(out, model(x), rtol=1e-4, atol=1e-5)


def run_tvm_model(model, x):
    module = torch.jit.trace(model, (x,), check_trace=False)
    with torch.no_grad():
        for _ in range(3):
            out = module(x)
    assert GROUP_KIND in str(torch.jit.last_executed_optimized_graph())
    return out


@pytest.mark.parametrize("keepdim", [False, True])
def test_spatial_mean_of_channels_last_reduces_columns_vectorised(keepdim):
    """mean over H, W of an NHWC tensor: (rows, H*W, C) reduced over the middle
    axis, C innermost in vector groups, the H*W loop outside them, rows and
    channel groups in parallel."""
    x = torch.randn(2, 64, 7, 9).to(memory_format=torch.channels_last)
    scripts = _scripts(_lowered(lambda t: t.mean((2, 3), keepdim=keepdim), [x]))
    (text,) = [t for n, t in scripts.items() if "mean" in n]
    assert 'T.sblock("T_colreduce_update")' in text, text
    lanes = torch_tvm._C.host_vector_width() // 32
    assert f"T.parallel(T.int64({2 * 64 // lanes}))" in text, text  # rows x channel groups
    lines = text.splitlines()
    k_loop = next(i for i, ln in enumerate(lines) if "in range(T.int64(63))" in ln)
    assert f"T.vectorized(T.int64({lanes}))" in lines[k_loop + 1], text  # lanes inside k


@pytest.mark.parametrize("shape", [(2, 64, 7, 9), (1, 5, 3, 3), (3, 24, 1, 13)])
def test_spatial_mean_and_sum_of_channels_last_match_eager(shape):
    torch_tvm.enable(min_group_size=1)
    x = _edge(*shape).to(memory_format=torch.channels_last)

    def fn(t):
        return t.mean((2, 3), keepdim=True) * t, t.sum((1, 2))
    module = torch.jit.trace(fn, (x,))
    with torch.no_grad():
        for _ in range(3):
            out = module(x)
        ref = fn(x)
    assert GROUP_KIND in str(torch.jit.last_executed_optimized_graph())
    assert_outputs_close(out, ref, rtol=1e-5, atol=1e-5, equal_nan=True)
