"""recompile_limit: a group compiles at most that many input specs; a new spec
past it runs in PyTorch, counted and reported, with results still eager's."""
from __future__ import annotations

import gc
import warnings

import pytest
import torch

import torch_tvm
from conftest import group_counters, jit, run_jitted


def _head(x, w):
    return torch.relu(x @ w) * 2.0 + 1.0


def _run_shapes(module, w, rows):
    for n in rows:
        x = torch.randn(n, 8)
        with torch.no_grad():
            torch.testing.assert_close(module(x, w), _head(x, w), rtol=1e-4, atol=1e-5)


@pytest.fixture(autouse=True)
def _collect_dead_groups():
    gc.collect()
    yield


def test_specs_past_the_limit_run_in_pytorch():
    torch_tvm.enable(recompile_limit=3)
    w = torch.randn(8, 5)
    module = jit(_head, [torch.randn(2, 8), w])
    run_jitted(module, torch.randn(2, 8), w)  # spec 1 (rows=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _run_shapes(module, w, [3, 4, 5, 6, 7, 5, 2, 3])  # 3, 4 compile; 5, 6, 7 do not
    counters = group_counters(torch.jit.last_executed_optimized_graph())
    assert len(counters) == 1, counters
    g = next(iter(counters.values()))
    assert g["compiles"] == 3 and g["compile_failures"] == 0, g
    # 5, 6, 7 and 5 again: four calls past the limit, in PyTorch
    assert g["over_recompile_limit"] == 4 and g["fallback_calls"] == 4, g
    assert g["cached_entries"] == 3, g
    (why,) = g["failures"].values()
    assert "recompile_limit=3" in why, g["failures"]
    limit_warnings = [w for w in caught if "recompile_limit" in str(w.message)]
    assert len(limit_warnings) == 1, [str(w.message) for w in caught]
    totals = torch_tvm.stats()
    assert totals["over_recompile_limit"] >= 4, totals

    report = torch_tvm.explain(module, (torch.randn(9, 8), w))
    assert "over_recompile_limit=" in str(report) and "recompile_limit=3" in str(report)


def test_compiled_specs_keep_running_compiled():
    torch_tvm.enable(recompile_limit=2)
    w = torch.randn(8, 5)
    module = jit(_head, [torch.randn(2, 8), w])
    run_jitted(module, torch.randn(2, 8), w)
    _run_shapes(module, w, [3, 4])  # 4 is past the limit
    before = dict(next(iter(group_counters(torch.jit.last_executed_optimized_graph()).values())))
    _run_shapes(module, w, [2, 3, 2, 3])
    after = next(iter(group_counters(torch.jit.last_executed_optimized_graph()).values()))
    assert after["cache_hits"] - before["cache_hits"] == 4, (before, after)
    assert after["fallback_calls"] == before["fallback_calls"], (before, after)


def test_strict_raises_past_the_limit():
    torch_tvm.enable(recompile_limit=1, strict=True)
    w = torch.randn(8, 5)
    module = jit(_head, [torch.randn(2, 8), w])
    run_jitted(module, torch.randn(2, 8), w)
    with pytest.raises(RuntimeError, match="recompile_limit=1"):
        with torch.no_grad():
            module(torch.randn(3, 8), w)


def test_limit_is_checked():
    with pytest.raises(ValueError, match="recompile_limit must be >= 1"):
        torch_tvm.enable(recompile_limit=0)
    with pytest.raises(ValueError, match="recompile_limit must be an int"):
        torch_tvm.enable(recompile_limit=2.5)
