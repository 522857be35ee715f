"""Runtime behaviour of compiled groups: fallback, strict mode, the per-group
compile cache, input copies, threads, and disable()."""
from __future__ import annotations

import gc
import threading
import warnings
from typing import List

import pytest
import torch
import torch.nn.functional as F

import torch_tvm
from conftest import GROUP_KIND, group_counters, group_nodes, jit, run_jitted

KEYS = ("calls", "cache_hits", "cache_misses", "compiles", "compile_failures", "fallback_calls",
        "input_copies", "evictions")


def snapshot():
    return {g["id"]: dict(g) for g in torch_tvm.stats()["groups"]}


def delta(before, after=None):
    """Counter increase summed over the live groups, robust to groups that
    appear (re-specialised plans) or disappear (collected modules)."""
    after = snapshot() if after is None else after
    return {k: sum(g[k] - before.get(i, {}).get(k, 0) for i, g in after.items()) for k in KEYS}


@pytest.fixture(autouse=True)
def _collect_dead_groups():
    gc.collect()  # groups of modules from earlier tests must not vanish mid-test
    yield


def _fallback_messages(caught):
    return [str(w.message) for w in caught if "falls back to PyTorch" in str(w.message)]


# ---------------------------------------------------------------------------
# fallback

def _pool_with_divisor(x):
    return F.avg_pool2d(torch.relu(x) + 1.0, 2, divisor_override=3) * 2.0


def test_unconvertible_op_falls_back_with_warning_naming_it():
    x = torch.randn(2, 3, 8, 6)
    module = jit(_pool_with_divisor, [x])
    before = snapshot()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, graph = run_jitted(module, x, calls=3)
    assert GROUP_KIND in str(graph)  # grouped: the converter only rejects it at compile time
    messages = _fallback_messages(caught)
    assert len(messages) == 1, messages  # warned once, not on every call
    assert "aten::avg_pool2d" in messages[0] and "divisor_override" in messages[0]
    torch.testing.assert_close(out, _pool_with_divisor(x))
    d = delta(before)
    assert d["compile_failures"] == 1 and d["compiles"] == 0, d
    assert d["fallback_calls"] == d["calls"] >= 2, d
    failures = [f for g in group_counters(graph).values() for f in g["failures"].values()]
    assert any("divisor_override" in f for f in failures), failures
    report = torch_tvm.explain(module, (x,))
    assert report.num_fallbacks >= 3 and "FALLBACK for spec" in str(report), str(report)


def _pool_with_divisor_copy(x):
    return F.avg_pool2d(torch.relu(x) - 1.0, 2, divisor_override=3) * 2.0


def test_rejection_prints_nothing_beyond_the_one_warning(capfd):
    """A converter that rejects an op leaves no open Relax block behind: TVM
    printed "BlockBuilder destroyed with remaining blocks!" on stderr."""
    x = torch.randn(2, 3, 8, 6)
    module = jit(_pool_with_divisor_copy, [x])
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_jitted(module, x, calls=3)
    assert len(_fallback_messages(caught)) == 1
    out, err = capfd.readouterr()
    assert err == "" and out == "", (out, err)


def test_strict_mode_raises_instead_of_falling_back():
    torch_tvm.enable(strict=True)
    x = torch.randn(2, 3, 8, 6)
    module = jit(_pool_with_divisor, [x])
    with pytest.raises(RuntimeError, match="falls back to PyTorch.*divisor_override"):
        run_jitted(module, x, calls=3)


def test_strict_mode_raises_for_a_remembered_failure():
    x = torch.randn(2, 3, 8, 6)
    module = jit(_pool_with_divisor, [x])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_jitted(module, x, calls=3)
    torch_tvm.enable(strict=True)
    with pytest.raises(RuntimeError, match="divisor_override"), torch.no_grad():
        module(x)


def _pointwise(x):
    return torch.relu(x * 2.0) + 1.0


def _affine(x):
    return x * 2.0 + 1.0


def test_failed_spec_is_not_retried_and_other_specs_still_compile():
    z = torch.randn(3, 4, dtype=torch.complex64)  # no Relax dtype for complex
    module = jit(_affine, [torch.randn(3, 4)])
    before = snapshot()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.no_grad():
            outs = [module(z) for _ in range(6)]
    assert len(_fallback_messages(caught)) == 1
    assert "ComplexFloat" in _fallback_messages(caught)[0]
    d = delta(before)
    assert d["compile_failures"] == 1 and d["compiles"] == 0, d
    # Every call that reached the group fell back (the plan's first call may profile).
    assert d["fallback_calls"] == d["calls"] >= 5, d
    for out in outs:
        assert out.dtype == torch.complex64
        torch.testing.assert_close(out, _affine(z))
    # A float input to the same module still compiles and runs in TVM.
    x = torch.randn(3, 4)
    before = snapshot()
    with torch.no_grad():
        out = module(x)
    d = delta(before)
    assert d["compiles"] == 1 and d["fallback_calls"] == 0, d
    torch.testing.assert_close(out, _affine(x))


# ---------------------------------------------------------------------------
# cache

def _mlp_head(x, w):
    return torch.softmax(torch.relu(x @ w) * 2.0 + 1.0, -1)


def test_new_shape_compiles_same_shape_hits():
    w = torch.randn(8, 5)
    a, b = torch.randn(3, 8), torch.randn(7, 8)
    module = jit(_mlp_head, [a, w])
    run_jitted(module, a, w, calls=3)
    expected = {3: _mlp_head(a, w), 7: _mlp_head(b, w)}
    steps = [(a, "hit"), (b, "miss"), (b, "hit"), (a, "hit"), (b, "hit")]
    for x, what in steps:
        before = snapshot()
        with torch.no_grad():
            out = module(x, w)
        d = delta(before)
        torch.testing.assert_close(out, expected[x.shape[0]], rtol=1e-4, atol=1e-5)
        if what == "hit":
            assert d["cache_hits"] == 1 and d["cache_misses"] == 0 and d["compiles"] == 0, d
        else:
            assert d["cache_misses"] == 1 and d["compiles"] == 1, d
        assert d["evictions"] == 0, d


def test_lru_evicts_with_cache_size_one():
    torch_tvm.enable(cache_size=1)
    w = torch.randn(8, 5)
    a, b = torch.randn(3, 8), torch.randn(7, 8)
    module = jit(_mlp_head, [a, w])
    run_jitted(module, a, w, calls=3)
    before = snapshot()
    for x in [b, a, b, a, b, a]:
        with torch.no_grad():
            out = module(x, w)
        torch.testing.assert_close(out, _mlp_head(x, w), rtol=1e-4, atol=1e-5)
    d = delta(before)
    assert d["evictions"] >= 5 and d["compiles"] >= 6 and d["cache_hits"] == 0, d
    counters = group_counters(torch.jit.last_executed_optimized_graph())
    assert counters and all(g["cached_entries"] == 1 for g in counters.values()), counters


def test_lru_keeps_recently_used_entries():
    torch_tvm.enable(cache_size=2)
    w = torch.randn(8, 5)
    xs = [torch.randn(n, 8) for n in (2, 3, 4)]
    module = jit(_mlp_head, [xs[0], w])
    run_jitted(module, xs[0], w, calls=3)
    before = snapshot()
    with torch.no_grad():
        for i in (1, 0, 2, 0):  # 2 evicts the least recently used (1), not 0
            torch.testing.assert_close(module(xs[i], w), _mlp_head(xs[i], w), rtol=1e-4,
                                       atol=1e-5)
    d = delta(before)
    assert d["compiles"] == 2 and d["evictions"] == 1 and d["cache_hits"] == 2, d


def _scaled(x, s: float):
    return torch.relu(x * s) + s


def test_non_tensor_inputs_are_part_of_the_key():
    x = torch.randn(4, 6)
    module = jit(_scaled, [x], script=True)
    run_jitted(module, x, 2.0, calls=3)
    for s, misses in [(2.0, 0), (3.0, 1), (2.0, 0), (-1.5, 1)]:
        before = snapshot()
        with torch.no_grad():
            out = module(x, s)
        torch.testing.assert_close(out, _scaled(x, s))
        assert delta(before)["cache_misses"] == misses, (s, delta(before))


@torch.jit.script
def _cat_list(xs: List[torch.Tensor]):
    return torch.cat(xs, 0) * 2.0


def test_a_tensor_list_input_is_read_at_every_call():
    # The list's tensors are parameters: values are never baked into the
    # compiled code (the key holds their shapes, not their data).
    torch_tvm.enable(min_group_size=1)
    a, b = torch.randn(2, 3), torch.randn(4, 3)
    run_jitted(_cat_list, [a, b], calls=3)
    for xs in ([torch.randn(2, 3), torch.randn(4, 3)], [a, b],
               [torch.randn(2, 3).t().contiguous().t(), torch.randn(4, 3)]):
        before = snapshot()
        with torch.no_grad():
            out = _cat_list(xs)
        torch.testing.assert_close(out, torch.cat(xs, 0) * 2.0)
        assert delta(before)["fallback_calls"] == 0
    graph = torch.jit.last_executed_optimized_graph()
    assert GROUP_KIND in str(graph), graph


def test_compile_settings_are_part_of_the_key():
    w = torch.randn(8, 5)
    x = torch.randn(3, 8)
    module = jit(_mlp_head, [x, w])
    run_jitted(module, x, w, calls=3)
    for options, misses in [({"opt_level": 0}, 1), ({"opt_level": 0}, 0),
                            ({"num_threads": 1}, 1), ({}, 0)]:
        torch_tvm.enable(**options)
        before = snapshot()
        with torch.no_grad():
            out = module(x, w)
        torch.testing.assert_close(out, _mlp_head(x, w), rtol=1e-4, atol=1e-5)
        d = delta(before)
        assert d["cache_misses"] == misses and d["fallback_calls"] == 0, (options, d)


def test_outputs_stay_valid_across_calls():
    torch.manual_seed(4)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8),
                                torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 7 * 9, 10)).eval()
    xs = [torch.randn(2, 3, 7, 9) for _ in range(5)]
    module = jit(model, [xs[0]])
    run_jitted(module, xs[0], calls=3)
    with torch.no_grad():
        outs = [module(x) for x in xs]  # all kept alive, checked afterwards
        refs = [model(x) for x in xs]
    for out, ref in zip(outs, refs):
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    assert len({o.data_ptr() for o in outs}) == len(outs)


def test_in_place_weight_update_is_seen():
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 3))
    x = torch.randn(5, 6)
    module = jit(model, [x])
    out, _ = run_jitted(module, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x))
        model[0].weight.mul_(-2.0)
        model[2].bias.add_(1.0)
        torch.testing.assert_close(module(x), model(x))


def test_non_contiguous_and_misaligned_inputs_are_copied():
    w = torch.randn(8, 5)
    module = jit(_mlp_head, [torch.randn(3, 8), w])
    run_jitted(module, torch.randn(3, 8), w, calls=3)
    transposed = torch.randn(8, 3).t()
    misaligned = torch.randn(3 * 8 + 1)[1:].view(3, 8)  # 4 bytes past a 64-byte boundary
    assert not transposed.is_contiguous() and misaligned.is_contiguous()
    for x in (transposed, misaligned):
        before = snapshot()
        with torch.no_grad():
            out = module(x, w)
        torch.testing.assert_close(out, _mlp_head(x, w), rtol=1e-4, atol=1e-5)
        d = delta(before)
        assert d["input_copies"] >= 1 and d["fallback_calls"] == 0, d


# ---------------------------------------------------------------------------
# threads

@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_threads_share_one_module(warm):
    w = torch.randn(8, 5)
    module = jit(_mlp_head, [torch.randn(3, 8), w])
    if warm:
        run_jitted(module, torch.randn(3, 8), w, calls=3)
    errors, checked = [], [0] * 4

    def worker(k):
        gen = torch.Generator().manual_seed(100 + k)
        try:
            for i in range(50):
                # Cold: each thread its own batch size, so compiles race too.
                x = torch.randn(3 if warm else 2 + k, 8, generator=gen)
                with torch.no_grad():
                    out = module(x, w)
                torch.testing.assert_close(out, _mlp_head(x, w), rtol=1e-4, atol=1e-5)
                checked[k] += 1
        except Exception as e:  # noqa: BLE001  reported below
            errors.append((k, repr(e)))

    before = snapshot()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert checked == [50] * 4
    d = delta(before)
    assert d["fallback_calls"] == 0 and d["compile_failures"] == 0, d
    # Every optimised call went through a group (a cold plan's first call may profile).
    assert d["calls"] >= 200 - (4 if not warm else 0), d
    assert d["compiles"] <= (0 if warm else 4 * 2), d


# ---------------------------------------------------------------------------
# disable()

def test_disable_stops_new_groups():
    x = torch.randn(3, 4)
    module = jit(_pointwise, [x])
    _, graph = run_jitted(module, x)
    assert GROUP_KIND in str(graph)
    torch_tvm.disable()
    assert not torch_tvm.is_enabled()
    fresh = jit(_pointwise, [x])
    out, graph = run_jitted(fresh, x)
    assert GROUP_KIND not in str(graph), graph
    torch.testing.assert_close(out, _pointwise(x))
    torch_tvm.enable()
    assert torch_tvm.is_enabled()
    again = jit(_pointwise, [x])
    _, graph = run_jitted(again, x)
    assert len(group_nodes(graph)) == 1


def test_enable_rejects_bad_options():
    for kwargs in ({"cache_size": 0}, {"min_group_size": 0}, {"num_threads": 0}):
        with pytest.raises(ValueError):
            torch_tvm.enable(**kwargs)
