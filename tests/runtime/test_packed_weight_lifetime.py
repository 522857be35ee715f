"""The oneDNN weights a compile prepacks live exactly as long as its
executable: evicting a cache entry or collecting the module frees them."""
from __future__ import annotations

import gc
import io

import pytest
import torch
import torch.nn as nn

import torch_tvm
from conftest import jit, run_jitted


@pytest.fixture(autouse=True)
def _onednn_convs():
    """These tests are about the oneDNN conv kernels: no Winograd choice."""
    torch_tvm.enable(winograd="off")
    yield


def _live():
    gc.collect()
    return torch_tvm.stats()["kernels"]["live_packed_weights"]


def _two_convs():
    return nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3)).eval()


def test_collected_module_frees_its_packed_weights():
    """A torch.jit.load-ed module owns its compilation unit, so collecting it
    frees its execution plans, their groups and the groups' executables.
    (Traced and scripted modules keep their methods in TorchScript's global
    compilation unit, which PyTorch never frees.)"""
    model, x = _two_convs(), torch.randn(1, 4, 10, 10)
    buffer = io.BytesIO()
    torch.jit.save(jit(model, [x]), buffer)
    buffer.seek(0)
    base = _live()
    module = torch.jit.load(buffer)
    out, _ = run_jitted(module, x)
    with torch.no_grad():
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    assert _live() == base + 2
    del module
    assert _live() == base


def test_evicted_cache_entry_frees_its_packed_weights():
    torch_tvm.enable(cache_size=1, winograd="off")
    model = _two_convs()
    a, b = torch.randn(1, 4, 10, 10), torch.randn(1, 4, 12, 12)
    base = _live()
    older_groups = {g["id"] for g in torch_tvm.stats()["groups"]}
    module = jit(model, [a])
    run_jitted(module, a)
    assert _live() == base + 2
    for x in [b, a, b, a]:
        with torch.no_grad():
            torch.testing.assert_close(module(x), model(x), rtol=1e-4, atol=1e-5)
    groups = [g for g in torch_tvm.stats()["groups"] if g["id"] not in older_groups]
    assert sum(g["evictions"] for g in groups) >= 3, groups
    # Only the entries still cached hold weights, two each.
    assert _live() - base == 2 * sum(g["cached_entries"] for g in groups), groups
