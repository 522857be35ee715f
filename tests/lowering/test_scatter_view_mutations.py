"""Writes into slices and selects of a freshly allocated tensor become
functional scatters (lowering/scatter_view_mutations), so the code that
builds swin's shifted-window mask joins a TVM group; every write the rewrite
cannot prove private stays in place, in PyTorch, with eager's semantics."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import torch_tvm
from conftest import (GROUP_KIND, assert_outputs_close, group_counters, group_nodes, jit,
                      outside_aten_ops, run_jitted)


def _canonical(graph) -> str:
    return str(torch._C._jit_pass_canonicalize(graph, False))


def _functionalized(ir: str) -> str:
    g = torch._C.parse_ir(ir)
    torch_tvm._C.functionalize(g)
    return _canonical(g)


_HEADER = """
graph(%x : Tensor):
  %c0 : int = prim::Constant[value=0]()
  %c1 : int = prim::Constant[value=1]()
  %c3 : int = prim::Constant[value=3]()
  %cm3 : int = prim::Constant[value=-3]()
  %none : NoneType = prim::Constant()
  %v : float = prim::Constant[value=5.]()
  %size : int[] = prim::ListConstruct(%c3, %c3)
"""


def test_pass_alone_rewrites_a_fill_into_a_slice_chain_of_a_fresh_buffer():
    before = _HEADER + """
  %m : Tensor = aten::zeros(%size, %none, %none, %none, %none)
  %s0 : Tensor = aten::slice(%m, %c0, %c0, %cm3, %c1)
  %s1 : Tensor = aten::select(%s0, %c1, %c1)
  %f : Tensor = aten::fill_(%s1, %v)
  %n : int = aten::numel(%m)
  %r : Tensor = aten::mul(%m, %x)
  return (%r, %n)
"""
    expected = _HEADER + """
  %m : Tensor = aten::zeros(%size, %none, %none, %none, %none)
  %s0 : Tensor = aten::slice(%m, %c0, %c0, %cm3, %c1)
  %s1 : Tensor = aten::select(%s0, %c1, %c1)
  %f : Tensor = aten::fill(%s1, %v)
  %t1 : Tensor = aten::select_scatter(%s0, %f, %c1, %c1)
  %t0 : Tensor = aten::slice_scatter(%m, %t1, %c0, %c0, %cm3, %c1)
  %n : int = aten::numel(%t0)
  %r : Tensor = aten::mul(%t0, %x)
  return (%r, %n)
"""
    # numel reads the shape only; after the last write it reads the final value.
    assert _functionalized(before) == _canonical(torch._C.parse_ir(expected))


def test_pass_alone_applies_add_then_copy_of_an_augmented_assignment():
    # m[0:3] += x, as traced: r = add_(view, x); view2.copy_(r)
    before = _HEADER + """
  %m : Tensor = aten::zeros(%size, %none, %none, %none, %none)
  %s0 : Tensor = aten::slice(%m, %c0, %c0, %c3, %c1)
  %a : Tensor = aten::add_(%s0, %x, %c1)
  %s1 : Tensor = aten::slice(%m, %c0, %c0, %c3, %c1)
  %false : bool = prim::Constant[value=0]()
  %k : Tensor = aten::copy_(%s1, %a, %false)
  return (%m)
"""
    got = _functionalized(before)
    assert "aten::add_" not in got and "aten::copy_" not in got, got
    assert got.count("aten::slice_scatter") == 2 and "aten::copy(" in got, got


def test_pass_alone_leaves_writes_into_an_input_or_an_observed_view():
    into_input = """
graph(%x : Tensor):
  %c0 : int = prim::Constant[value=0]()
  %c1 : int = prim::Constant[value=1]()
  %v : float = prim::Constant[value=5.]()
  %s : Tensor = aten::slice(%x, %c0, %c0, %c1, %c1)
  %f : Tensor = aten::fill_(%s, %v)
  return (%x)
"""
    observed_view = _HEADER + """
  %m : Tensor = aten::zeros(%size, %none, %none, %none, %none)
  %early : Tensor = aten::select(%m, %c0, %c0)
  %s : Tensor = aten::slice(%m, %c0, %c0, %c1, %c1)
  %f : Tensor = aten::fill_(%s, %v)
  return (%early)
"""
    for ir in (into_input, observed_view):
        assert "aten::fill_" in _functionalized(ir)


# ---------------------------------------------------------------------------
# End to end, traced as a user would

def _shifted_window_mask(x):
    # torchvision's swin: a zeros buffer filled region by region.
    H, W = x.shape[-2], x.shape[-1]
    m = x.new_zeros((H, W))
    count = 0
    for h in ((0, -4), (-4, -2), (-2, None)):
        for w in ((0, -4), (-4, -2), (-2, None)):
            m[h[0]:h[1], w[0]:w[1]] = count
            count += 1
    m = m.view(H // 4, 4, W // 4, 4).permute(0, 2, 1, 3).reshape(-1, 16)
    m = m.unsqueeze(1) - m.unsqueeze(2)
    m = m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)
    return x.unsqueeze(1) + m


def _augmented(x):
    m = torch.zeros(x.shape[0], 8)
    m[:, 1:5] += x[:, :4]
    m[1] *= 3.0
    m[:, ::3] = 2.0
    m[0, -1] = -1.0
    return m * x.sum()


def _numel_slice_of_clone(x, w, b):
    # torchvision's swin_v2: the k part of a cloned qkv bias is zeroed.
    b = b.clone()
    length = b.numel() // 3
    b[length: 2 * length].zero_()
    return F.linear(x, w, b)


def _all_in_one_group(fn, *inputs):
    module = jit(fn, inputs)
    out, graph = run_jitted(module, *inputs)
    with torch.no_grad():
        expected = fn(*inputs)
    assert_outputs_close(out, expected, rtol=1e-5, atol=1e-6)
    assert len(group_nodes(graph)) == 1, graph
    assert not outside_aten_ops(graph), (outside_aten_ops(graph), graph)
    for gid, c in group_counters(graph).items():
        assert c["fallback_calls"] == 0 and c["compiles"] == 1, (gid, c["failures"])
    return graph


def test_shifted_window_mask_runs_in_one_group():
    _all_in_one_group(_shifted_window_mask, torch.randn(2, 16, 16))


def test_augmented_assignments_into_slices_and_selects_run_in_one_group():
    _all_in_one_group(_augmented, torch.randn(3, 8))


def test_zeroed_slice_of_a_cloned_bias_sized_by_numel_runs_in_one_group():
    _all_in_one_group(_numel_slice_of_clone, torch.randn(4, 6), torch.randn(9, 6), torch.randn(9))


def _writes_into_input(x):
    x[1:3, 0] = 7.0
    return x * 2.0


def _reads_view_before_write(x):
    m = torch.zeros(4, 4)
    early = m[0]          # a view: it sees the write below
    m[0:2, 1:3] = 5.0
    return early + x.sum()


def _source_overlaps_destination(x):
    m = x * 1.0
    m = torch.zeros(5) + m
    m[1:4] = m[0:3].clone()
    return m


def test_writes_that_are_observed_keep_eager_semantics():
    x = torch.randn(4, 3)
    module = jit(_writes_into_input, [x.clone()])
    a, b = x.clone(), x.clone()
    out, graph = run_jitted(module, a, calls=1)
    expected = _writes_into_input(b)
    assert_outputs_close(out, expected)
    torch.testing.assert_close(a, b)           # the caller's tensor was written
    assert "aten::fill_" in outside_aten_ops(graph) or "aten::copy_" in outside_aten_ops(graph)

    out, graph = run_jitted(jit(_reads_view_before_write, [x]), x)
    assert_outputs_close(out, _reads_view_before_write(x))
    torch.testing.assert_close(out[1:3], (5.0 + x.sum()).expand(2))  # the write showed through

    y = torch.randn(5)
    out, _ = run_jitted(jit(_source_overlaps_destination, [y]), y)
    assert_outputs_close(out, _source_overlaps_destination(y))
