"""Concatenation of three or more inputs as one copy block per input
(torch_tvm/_concat.py) instead of TOPI's per-element if_then_else chain:
numerics against eager, and the form read from the scheduled TIR."""
from __future__ import annotations

import pytest
import torch
import tvm

import torch_tvm
from torch_tvm import _build
from conftest import GROUP_KIND, assert_outputs_close, group_counters, jit, run_jitted


def _lowered(fn, inputs):
    mod = torch_tvm.to_relax(fn, inputs)
    target = tvm.target.Target({"kind": "llvm", "mcpu": torch_tvm._C.host_cpu(), "num-cores": 2})
    with target, tvm.transform.PassContext(opt_level=3):
        return _build._pipeline(3)(mod)


def _scripts(mod):
    return {gv.name_hint: f.script() for gv, f in mod.functions.items()
            if isinstance(f, tvm.tirx.PrimFunc)}


def _dense_block(a, b, c, d):
    # DenseNet's pattern: cat of feature maps, then batch-norm-like affine and relu.
    y = torch.cat([a, torch.relu(b), c * 2.0, d], 1)
    return torch.relu(y * 0.5 - 0.25)


SHAPES = [(2, 3, 5, 7), (2, 8, 5, 7), (2, 1, 5, 7), (2, 16, 5, 7)]


@pytest.mark.parametrize("channels_last", [False, True])
def test_many_input_concat_matches_eager_and_runs_in_tvm(channels_last):
    xs = [torch.randn(*s) for s in SHAPES]
    if channels_last:
        xs = [x.to(memory_format=torch.channels_last) for x in xs]
    out, graph = run_jitted(jit(_dense_block, xs), *xs)
    assert GROUP_KIND in str(graph)
    assert_outputs_close(out, _dense_block(*xs), rtol=0, atol=0)
    for gid, c in group_counters(graph).items():
        assert c["fallback_calls"] == 0, (gid, c["failures"])


def test_many_input_concat_is_one_copy_block_per_input():
    xs = [torch.randn(*s) for s in SHAPES]
    scripts = _scripts(_lowered(_dense_block, xs))
    concat = [s for name, s in scripts.items() if "concatenate" in name]
    assert concat, list(scripts)
    text = concat[0]
    for i in range(len(SHAPES)):
        assert f'T.sblock("T_concat_{i}")' in text, text
    assert "if_then_else" not in text and "T.if_then_else" not in text, text
    assert "T.vectorized" in text and "T.parallel" in text, text


def test_two_input_concat_keeps_topi_form():
    xs = [torch.randn(2, 3, 4), torch.randn(2, 5, 4)]
    scripts = _scripts(_lowered(lambda a, b: torch.cat([a, b], 1) * 2.0, xs))
    assert not any("T_concat_0" in s for s in scripts.values()), scripts


@pytest.mark.parametrize("dim", [0, -1])
def test_concat_of_ints_on_other_axes_and_empty_inputs(dim):
    xs = [torch.randint(-5, 5, (3, 4)), torch.randint(-5, 5, (3, 4)),
          torch.zeros((3, 0) if dim == -1 else (0, 4), dtype=torch.long),
          torch.randint(-5, 5, (3, 4))]
    fn = lambda a, b, c, d: torch.cat([a + 1, b, c, d], dim) * 3  # noqa: E731
    out, graph = run_jitted(jit(fn, xs), *xs)
    assert GROUP_KIND in str(graph)
    assert torch.equal(out, fn(*xs))
