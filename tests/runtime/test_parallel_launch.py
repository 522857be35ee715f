"""TVM-generated parallel loops run on PyTorch's OpenMP pool, with the thread budget.

csrc/kernels/parallel_launch.cpp replaces TVM's parallel launcher with one that
runs the tasks through at::parallel_for. Compiled without OpenMP, that inline
template runs every task on the calling thread; the counters prove the loops
really ran on more than one thread (no timing involved).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

import torch_tvm
from conftest import jit, run_jitted


def _mish_add(x):
    return F.mish(x) + x


def _kernel_counters():
    return torch_tvm.stats()["kernels"]


def test_generated_loops_run_on_the_torch_pool_with_the_thread_budget():
    saved = torch.get_num_threads()
    try:
        torch_tvm.enable(num_threads=2)
        x = torch.randn(8, 64, 56, 56)
        module = jit(_mish_add, [x])
        run_jitted(module, x, calls=3)  # profile, then compile
        before = _kernel_counters()
        out, _ = run_jitted(module, x, calls=2)
        after = _kernel_counters()
        torch.testing.assert_close(out, _mish_add(x), rtol=1e-5, atol=1e-6)
        assert after["parallel_launches"] - before["parallel_launches"] >= 2
        # The widest region ran on both threads of the budget (one thread per
        # task; TVM's own pool, or a serial launcher, would leave this at <= 1).
        assert after["parallel_max_threads"] >= 2, after
    finally:
        torch.set_num_threads(saved)
