"""Graph-level partitioning: which nodes end up in tvm::CompilationGroup."""
from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn

import torch_tvm
from conftest import (GROUP_KIND, assert_outputs_close, group_counters, group_nodes, jit,
                      ops_in_groups, outside_aten_ops, run_jitted, run_tvm, walk_nodes)


def _conv_bn_relu():
    torch.manual_seed(1)
    block = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()).eval()
    # Non-trivial running statistics so batch_norm is not an identity.
    block[1].running_mean.uniform_(-0.5, 0.5)
    block[1].running_var.uniform_(0.5, 2.0)
    block[1].weight.data.uniform_(0.5, 1.5)
    block[1].bias.data.uniform_(-0.5, 0.5)
    return block


def test_conv_bn_relu_is_one_group():
    block = _conv_bn_relu()
    x = torch.randn(2, 3, 11, 9)
    out, graph = run_tvm(block, x, return_graph=True)
    assert len(group_nodes(graph)) == 1, graph
    inside = ops_in_groups(graph)
    for op in ("aten::batch_norm", "aten::relu"):
        assert op in inside, (op, inside)
    assert any(op in inside for op in ("aten::_convolution", "aten::conv2d")), inside
    assert outside_aten_ops(graph) == [], graph
    with torch.no_grad():
        torch.testing.assert_close(out, block(x), rtol=1e-4, atol=1e-5)


def _unsupported_in_middle(x):
    y = torch.relu(x * 2.0 + 1.0)
    z = torch.cumprod(y, 1)
    return torch.sigmoid(z) * 3.0 - 1.0


@pytest.mark.parametrize("script", [False, True], ids=["trace", "script"])
def test_unsupported_op_splits_graph(script):
    assert "aten::cumprod" not in torch_tvm.supported_ops()
    x = torch.randn(4, 7)
    out, graph = run_tvm(_unsupported_in_middle, x, script=script, return_graph=True)
    assert len(group_nodes(graph)) == 2, graph
    assert outside_aten_ops(graph) == ["aten::cumprod"], graph
    # cumprod lies between the two groups in program order.
    kinds = [n.kind() for n in graph.nodes() if n.kind() in (GROUP_KIND, "aten::cumprod")]
    assert kinds == [GROUP_KIND, "aten::cumprod", GROUP_KIND]
    torch.testing.assert_close(out, _unsupported_in_middle(x), rtol=1e-4, atol=1e-5)

    module = jit(_unsupported_in_middle, [x], script=script)
    report = torch_tvm.explain(module, (x,))
    assert len(report.groups) == 2
    assert [g["ops"] for g in report.groups] == [
        ["aten::mul.Scalar", "aten::add.Scalar", "aten::relu"],
        ["aten::sigmoid", "aten::mul.Scalar", "aten::sub.Scalar"],
    ]
    outside = {o["op"]: o["reason"] for o in report.outside}
    assert list(outside) == ["aten::cumprod"], report.outside
    assert "no converter" in outside["aten::cumprod"]
    assert "cumprod" in str(report)
    for g in report.groups:
        assert g["compiles"] == 1 and g["fallback_calls"] == 0, g


def _two_ops(x):
    return torch.relu(x + 1.0)


def test_min_group_size_dissolves_small_groups():
    x = torch.randn(3, 5)
    torch_tvm.enable(min_group_size=3)
    module = jit(_two_ops, [x])
    out, graph = run_jitted(module, x)
    assert GROUP_KIND not in str(graph)
    assert sorted(outside_aten_ops(graph)) == ["aten::add", "aten::relu"]
    report = torch_tvm.explain(module, (x,))
    assert report.groups == []
    assert all("supported, but left outside" in o["reason"] for o in report.outside), report.outside
    torch.testing.assert_close(out, _two_ops(x))

    # The same function with a group size the function meets is grouped.
    torch_tvm.enable(min_group_size=2)
    out, graph = run_tvm(_two_ops, x, return_graph=True)
    assert len(group_nodes(graph)) == 1 and outside_aten_ops(graph) == []
    torch.testing.assert_close(out, _two_ops(x))


def _views_only(x):
    return x[:, 1:].unsqueeze(0)[..., :3]


def _views_then_compute(x):
    return x[:, 1:].unsqueeze(0) * 2.0


def test_a_group_of_views_only_is_not_formed():
    # Eager returns views for free; a group would copy. With compute, they group.
    torch_tvm.enable(min_group_size=1)
    x = torch.randn(4, 6, 5)
    module = jit(_views_only, [x])
    out, graph = run_jitted(module, x)
    assert GROUP_KIND not in str(graph), graph
    assert out.data_ptr() != x.data_ptr() and out._base is x  # still a view, as in eager
    torch.testing.assert_close(out, _views_only(x))
    out, graph = run_tvm(_views_then_compute, x, return_graph=True)
    assert len(group_nodes(graph)) == 1 and outside_aten_ops(graph) == [], graph
    torch.testing.assert_close(out, _views_then_compute(x))


@pytest.mark.parametrize("script", [False, True], ids=["trace", "script"])
def test_in_place_dropout_in_eval_is_removed(script):
    # torchvision's classifiers use Dropout(inplace=True): a no-op in eval,
    # it must not split the graph (it cannot be made functional otherwise).
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.3, inplace=True),
                          nn.Linear(8, 4)).eval()
    x = torch.randn(3, 6)
    module = jit(model, [x], script=script)
    if script:
        module = torch.jit.freeze(module)
    out, graph = run_jitted(module, x)
    assert outside_aten_ops(graph) == [], graph
    assert len(group_nodes(graph)) == 1, graph
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-6)


def _control_flow(x, flag: bool, n: int):
    if flag:
        y = torch.relu(x * 2.0 + 1.0)
    else:
        y = torch.sigmoid(x - 1.0) * 3.0
    for _ in range(n):
        y = torch.tanh(y + 0.5) * 1.5
    return y


@pytest.mark.parametrize("flag,n", [(True, 3), (False, 2), (True, 0)])
def test_groups_inside_if_and_loop_blocks(flag, n):
    x = torch.randn(3, 6)
    module = jit(_control_flow, [x], script=True)
    out, graph = run_jitted(module, x, flag, n)
    torch.testing.assert_close(out, _control_flow(x, flag, n), rtol=1e-5, atol=1e-6)
    ifs = [nd for nd in walk_nodes(graph) if nd.kind() == "prim::If"]
    loops = [nd for nd in walk_nodes(graph) if nd.kind() == "prim::Loop"]
    assert ifs and loops, graph
    for b in ifs[0].blocks():  # both branches are grouped, taken or not
        assert [nd.kind() for nd in b.nodes()].count(GROUP_KIND) == 1, graph
    for loop in loops:
        body = next(iter(loop.blocks()))
        assert GROUP_KIND in [nd.kind() for nd in body.nodes()], graph
    assert outside_aten_ops(graph) == [], graph
    # The other branch also gives the right answer with the same plan.
    with torch.no_grad():
        other = module(x, not flag, n + 1)
    torch.testing.assert_close(other, _control_flow(x, not flag, n + 1), rtol=1e-5, atol=1e-6)
    assert sum(c["compiles"] for c in group_counters(graph).values()) >= 2


@pytest.mark.parametrize("layer", ["batch_norm", "dropout"])
def test_scripted_eval_module_groups_ops_with_a_training_flag(layer):
    """torch.jit.script(model.eval()) without freezing: `training` reaches
    batch_norm/dropout as prim::GetAttr, not as a constant. The README
    documents this entry point, so the model's ops should still be grouped."""
    torch.manual_seed(2)
    if layer == "batch_norm":
        model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3))
        # nn.Conv2d's unfrozen forward branches on the str attribute
        # padding_mode, so each conv2d sits alone in a prim::If block (below
        # min_group_size): conv2d is not required to be grouped here.
        x, required = torch.randn(1, 3, 9, 9), {"aten::batch_norm", "aten::relu"}
    else:
        model = nn.Sequential(nn.Linear(6, 5), nn.Dropout(0.1), nn.Linear(5, 3))
        x, required = torch.randn(2, 6), {"aten::linear", "aten::dropout"}
    model.eval()
    module = jit(model, [x], script=True)
    out, graph = run_jitted(module, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    inside = set(ops_in_groups(graph))
    assert required <= inside, f"not grouped: {sorted(required - inside)}"
    assert not required & set(outside_aten_ops(graph)), outside_aten_ops(graph)


def _inplace_on_temporary(x):
    y = x * 2.0
    y.add_(1.0)
    y.relu_()
    return y.sigmoid_()


@pytest.mark.parametrize("script", [False, True], ids=["trace", "script"])
def test_inplace_ops_become_functional_and_grouped(script):
    x = torch.randn(4, 5)
    x_before = x.clone()
    out, graph = run_tvm(_inplace_on_temporary, x, script=script, return_graph=True)
    assert len(group_nodes(graph)) == 1, graph
    inside = ops_in_groups(graph)
    assert {"aten::mul", "aten::add", "aten::relu", "aten::sigmoid"} <= set(inside), inside
    assert not [k for k in inside if k.endswith("_")], inside
    assert outside_aten_ops(graph) == [], graph
    torch.testing.assert_close(out, torch.sigmoid(torch.relu(x * 2.0 + 1.0)))
    torch.testing.assert_close(x, x_before)  # the input was never touched


def _mutates_input_through_view(x):
    v = x.view(-1)
    v.add_(1.0)
    return torch.relu(x * 2.0) + 1.0


def test_observable_mutation_is_not_grouped():
    x = torch.randn(3, 5)
    module = jit(_mutates_input_through_view, [x], script=True)
    outs, mutated = [], []
    with torch.no_grad():
        for _ in range(3):
            arg = x.clone()
            outs.append(module(arg))
            mutated.append(arg)
    graph = torch.jit.last_executed_optimized_graph()
    outside = outside_aten_ops(graph)
    assert "aten::add_" in outside and "aten::view" in outside, graph
    # The multiply reads x but returns a fresh tensor (as in PyTorch): it may be
    # grouped, since AliasDb keeps it ordered before the write through the view.
    assert not [k for k in ops_in_groups(graph) if k in ("aten::add_", "aten::view")]
    expected_arg = x.clone()
    expected = _mutates_input_through_view(expected_arg)
    for out, arg in zip(outs, mutated):
        torch.testing.assert_close(out, expected)
        torch.testing.assert_close(arg, expected_arg)  # the caller sees the mutation


def _uses_size(x):
    y = torch.relu(x * 2.0)
    return y.view(y.size(0), -1) + 1.0


def test_shape_arithmetic_is_grouped_as_compile_time_constants():
    """aten::size of a grouped tensor is folded to a constant at compile time
    (each shape is its own cache entry), so the view stays in the same group."""
    x = torch.randn(3, 4, 5)
    out, graph = run_tvm(_uses_size, x, script=True, return_graph=True)
    torch.testing.assert_close(out, _uses_size(x))
    assert len(group_nodes(graph)) == 1, graph
    assert {"aten::relu", "aten::view", "aten::add"} <= set(ops_in_groups(graph))
    assert outside_aten_ops(graph) == [], graph
    # A new shape is a new spec: the folded size changes with it.
    x2 = torch.randn(6, 2, 5)
    with torch.no_grad():
        module = jit(_uses_size, [x2], script=True)
        for _ in range(3):
            out2 = module(x2)
    torch.testing.assert_close(out2, _uses_size(x2))


def _uses_value(x):
    y = torch.relu(x * 2.0)
    s = float(y.sum())  # a tensor *value* turned into a Python float
    return y * s + 1.0


def test_non_tensor_values_are_never_grouped():
    x = torch.randn(3, 4, 5)
    out, graph = run_tvm(_uses_value, x, script=True, return_graph=True)
    torch.testing.assert_close(out, _uses_value(x), rtol=1e-4, atol=1e-5)
    inside = ops_in_groups(graph)
    assert not [k for k in inside if k.startswith(("aten::Float", "aten::item"))], inside
    for g in group_nodes(graph):
        for o in g.outputs():
            assert "Tensor" in str(o.type()) or "int" in str(o.type()), g
    report = torch_tvm.explain(jit(_uses_value, [x], script=True), (x,))
    assert any(o["op"].startswith("aten::Float") and "non-tensor" in o["reason"]
               for o in report.outside), report.outside


class _SmallNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)
        return torch.softmax(self.fc(y), -1)


def test_jit_save_and_load_roundtrip():
    torch.manual_seed(3)
    model = _SmallNet().eval()
    model.bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 15, 13)
    with torch.no_grad():
        expected = model(x)
    buffer = io.BytesIO()
    torch.jit.save(jit(model, [x]), buffer)
    buffer.seek(0)
    loaded = torch.jit.load(buffer)
    out, graph = run_jitted(loaded, x)
    assert len(group_nodes(graph)) >= 1, graph
    assert outside_aten_ops(graph) == [], graph
    assert_outputs_close(out, expected)
    counters = group_counters(graph)
    assert counters and all(c["compiles"] >= 1 and c["fallback_calls"] == 0
                            for c in counters.values()), counters


def _mixed_reasons(x, y):
    a = torch.relu(x * 2.0)           # below min_group_size=3 once cumprod splits the chain
    b = torch.cumprod(a, 0)            # no converter
    y.add_(1.0)                       # written in place: y's view below must stay outside
    v = y.view(-1)
    return b, torch.sigmoid(v) + 1.0


@pytest.mark.parametrize("script", [False, True])
def test_explain_prints_the_partitioners_typed_decision_per_node(script):
    """explain() reads the decision the partitioner recorded for each node it
    left outside, not a guess."""
    x, y = torch.randn(3, 4), torch.randn(3, 4)
    torch_tvm.enable(min_group_size=3)
    module = jit(_mixed_reasons, [x, y.clone()], script=script)
    report = torch_tvm.explain(module, (x, y.clone()))
    decisions = {o["op"]: o["decision"] for o in report.outside}
    assert decisions["aten::cumprod"] == "unsupported_op", report.outside
    assert decisions["aten::relu"] == "below_min_group_size", report.outside
    assert decisions["aten::mul.Scalar"] == "below_min_group_size", report.outside
    assert decisions["aten::view"] == "written_in_place", report.outside
    assert "[below_min_group_size]: supported, but left outside: its group had 2 compute " \
           "op(s), below min_group_size=3" in str(report)
    assert not any(o["decision"] == "not_partitioned" for o in report.outside), report.outside


def _traced_shape_arithmetic(x):
    n = x.shape[0] * 2            # traced: NumToTensor(size) * 2, then aten::Int for the view
    return torch.relu(x.reshape(n, -1) * 3.0 + 1.0)


def _int_of_data(x):
    k = int(x.max())              # the value of computed data
    return torch.relu(x * 2.0 + k)


def test_shape_arithmetic_on_0d_tensors_folds_at_compile_time():
    """Traced shape math (mul of NumToTensor(size), then Int) is evaluated when
    the group compiles: the group compiles once and never falls back (it used
    to fail with "binary op with two scalars" / "Int.Tensor: input 0 must be
    known at compile time" on every call)."""
    torch_tvm.enable()
    x = torch.randn(4, 6, 5)
    before = torch_tvm.stats()
    out, graph = run_tvm(_traced_shape_arithmetic, x, return_graph=True)
    torch.testing.assert_close(out, _traced_shape_arithmetic(x))
    ops = ops_in_groups(graph)
    assert "aten::reshape" in ops and "aten::Int" in ops, ops
    after = torch_tvm.stats()
    assert after["compile_failures"] == before["compile_failures"]
    assert after["fallback_calls"] == before["fallback_calls"]


def test_int_of_runtime_data_never_enters_a_group():
    """aten::Int of a tensor computed at run time could never compile in a
    group: it stays outside with its reason, and no group falls back."""
    torch_tvm.enable(min_group_size=1)
    x = torch.randn(4, 6)
    module = jit(_int_of_data, [x], script=True)
    before = torch_tvm.stats()
    out, graph = run_jitted(module, x)
    torch.testing.assert_close(out, _int_of_data(x))
    assert GROUP_KIND in str(graph)
    after = torch_tvm.stats()
    assert after["compile_failures"] == before["compile_failures"]
    assert after["fallback_calls"] == before["fallback_calls"]
    report = torch_tvm.explain(module, (x,))
    decisions = {o["op"]: o["decision"] for o in report.outside}
    assert decisions.get("aten::Int.Tensor") == "needs_runtime_value", report.outside
