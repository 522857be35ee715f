"""Unfrozen torch.jit.script modules: the graph is versioned on .training so
the eval version groups like a frozen module, while train() still runs the
original code with PyTorch's semantics (batch statistics, buffer updates)."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn

import torch_tvm
from conftest import GROUP_KIND, group_counters, run_jitted


class _ConvBnRelu(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.drop = nn.Dropout(p)

    def forward(self, x):
        return self.drop(torch.relu(self.bn(self.conv(x))))


class _SetsAttribute(_ConvBnRelu):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.relu(self.bn(self.conv(x)))


def _versioning_ifs(graph):
    return [n for n in graph.nodes() if n.kind() == "prim::If" and n.hasAttribute("tvm_eval_versioned")]


def _eval_block_kinds(graph):
    (version,) = _versioning_ifs(graph)
    return [n.kind() for n in list(version.blocks())[1].nodes()]


def test_eval_version_is_one_group_with_conv_bn_relu():
    model = _ConvBnRelu().eval()
    x = torch.randn(2, 3, 12, 12)
    scripted = torch.jit.script(model)
    out, graph = run_jitted(scripted, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    kinds = _eval_block_kinds(graph)
    assert kinds.count(GROUP_KIND) == 1 and "prim::If" not in kinds, kinds
    (group,) = [n for n in list(_versioning_ifs(graph)[0].blocks())[1].nodes() if n.kind() == GROUP_KIND]
    inner = [n.kind() for n in group.g("Subgraph").nodes()]
    assert {"aten::conv2d", "aten::batch_norm", "aten::relu"} <= set(inner), inner
    assert sum(g["calls"] for g in group_counters(graph).values()) >= 2
    assert torch_tvm.explain(scripted, x).eval_version


def test_train_mode_keeps_pytorch_semantics():
    model = _ConvBnRelu(p=0.0)  # deterministic, still training-mode batch norm
    reference = copy.deepcopy(model)
    scripted = torch.jit.script(model.eval())
    x = torch.randn(4, 3, 12, 12)
    run_jitted(scripted, x)  # builds the versioned plan in eval mode
    scripted.train()
    reference.train()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), reference(x), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(scripted.bn.running_mean, reference.bn.running_mean)
    assert int(scripted.bn.num_batches_tracked) == int(reference.bn.num_batches_tracked) == 1


def test_module_that_sets_attributes_is_not_versioned():
    model = _SetsAttribute().eval()
    x = torch.randn(1, 3, 10, 10)
    out, graph = run_jitted(torch.jit.script(model), x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    assert not _versioning_ifs(graph)


def test_traced_graph_is_left_alone():
    model = _ConvBnRelu().eval()
    x = torch.randn(1, 3, 10, 10)
    with torch.no_grad():
        traced = torch.jit.trace(model, x)
    _, graph = run_jitted(traced, x)
    assert not _versioning_ifs(graph) and GROUP_KIND in str(graph)


class _FlagInsideBranch(nn.Module):
    """The training flag is read inside an If block (BatchNorm under a
    data-dependent branch): the flags of nested blocks are versioned too."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(4)
        self.conv = nn.Conv2d(4, 4, 3)

    def forward(self, x):
        if bool(x.sum() > -1e9):
            x = self.bn(x)
        return torch.relu(self.conv(x))


def _training_reads(block):
    reads = 0
    for n in block.nodes():
        for sub in n.blocks():
            reads += _training_reads(sub)
        if n.kind() == "prim::GetAttr" and n.s("name") == "training":
            reads += 1
    return reads


def test_flag_read_inside_a_nested_block_is_versioned_without_warning():
    import warnings
    model = _FlagInsideBranch().eval()
    x = torch.randn(1, 4, 8, 8)
    scripted = torch.jit.script(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, graph = run_jitted(scripted, x)
    messages = [str(w.message) for w in caught if "torch_tvm" in str(w.message)]
    assert not messages, messages
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    (version,) = _versioning_ifs(graph)
    assert _training_reads(list(version.blocks())[1]) == 0
    assert _training_reads(list(version.blocks())[0]) >= 1
    scripted.train()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model.train()(x), rtol=1e-4, atol=1e-5)
