"""In-place activations whose input nobody else reads become functional
(lowering/functionalize.cpp, FunctionalizeSoleUseUnaries), where torch's
RemoveTensorMutation gives up: its output is then split or chunked
(CSPDarkNet's `leaky_relu_(bn(x)).split(...)`). Writes that another value could
observe stay in place, in PyTorch."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import assert_outputs_close, group_nodes, jit, ops_in_groups, outside_aten_ops, run_jitted
from test_scatter_view_mutations import _canonical, _functionalized

_T = "Float(2, 8, strides=[8, 1], requires_grad=0, device=cpu)"


def _graph(body: str, producer: str = "aten::mul(%x, %c2)", op: str = "aten::leaky_relu_") -> str:
    return f"""
graph(%x : {_T}):
  %c2 : float = prim::Constant[value=2.]()
  %slope : float = prim::Constant[value=0.01]()
  %c4 : int = prim::Constant[value=4]()
  %c1 : int = prim::Constant[value=1]()
  %c0 : int = prim::Constant[value=0]()
  %y : {_T} = {producer}
  %z : {_T} = {op}(%y, %slope)
  %l : Tensor[] = aten::split(%z, %c4, %c1)
  %a : Tensor, %b : Tensor = prim::ListUnpack(%l)
  {body}
"""


def test_sole_reader_in_place_activation_becomes_functional():
    before = _graph("return (%a, %b)")
    expected = _graph("return (%a, %b)", op="aten::leaky_relu")
    assert "aten::leaky_relu_" in _canonical(torch._C.parse_ir(before))
    g = torch._C.parse_ir(expected)
    torch._C._jit_pass_dce(g)  # Functionalize ends with dead-code elimination (%c0)
    assert _functionalized(before) == _canonical(g)


def test_write_seen_through_another_reader_stays_in_place():
    # %y is read again after the write: the in-place result shows through it.
    before = _graph("%r : Tensor = aten::add(%y, %a, %c1)\n  return (%r, %b)")
    assert "aten::leaky_relu_" in _functionalized(before)


def test_write_into_a_view_stays_in_place():
    # %y is a view of %x (slice returns Tensor(a)): the write changes the caller's tensor.
    before = _graph("return (%a, %b)", producer="aten::slice(%x, %c0, %c0, %c4, %c1)")
    assert "aten::leaky_relu_" in _functionalized(before)


def test_write_into_a_graph_input_stays_in_place():
    ir = _graph("return (%a, %b)").replace("%z : " + _T + " = aten::leaky_relu_(%y, %slope)",
                                              "%z : " + _T + " = aten::leaky_relu_(%x, %slope)")
    assert "aten::leaky_relu_" in _functionalized(ir)


class _CrossStage(nn.Module):
    """timm's CSP cross stage: conv -> bn -> leaky_relu_ -> split -> ... -> cat."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.conv_b = nn.Conv2d(4, 8, 1), nn.BatchNorm2d(8), nn.Conv2d(4, 4, 3,
                                                                                           padding=1)

    def forward(self, x):
        y = F.leaky_relu_(self.bn(self.conv(x)), 0.1)
        xs, xb = y.split(4, dim=1)
        return torch.cat([xs, self.conv_b(xb)], dim=1)


def test_cross_stage_runs_in_one_group_and_matches_eager():
    m = _CrossStage().eval()
    x = torch.randn(2, 4, 9, 9)
    module = jit(m, (x,))
    out, graph = run_jitted(module, x)
    assert_outputs_close(out, m(x))
    assert outside_aten_ops(graph) == []
    assert len(group_nodes(graph)) == 1 and "aten::leaky_relu" in ops_in_groups(graph)
