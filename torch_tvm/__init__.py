"""torch_tvm: run TorchScript subgraphs as TVM-compiled code."""
import os

# TVM sizes each thread's pool at first use, to half the cores on x86 unless
# told otherwise, and can only shrink it later. Start from every core; the
# group operator lowers it to the thread budget (enable(num_threads=...)).
os.environ.setdefault("TVM_NUM_THREADS", str(os.cpu_count() or 1))

import tvm  # noqa: F401  (registers TVM's globals before the core loads)
import torch

from . import _build  # noqa: F401  (registers torch_tvm.build_relax)
from . import _C
from ._api import (disable, enable, explain, is_enabled, stats, supported_ops, to_relax)

__all__ = ["enable", "disable", "is_enabled", "explain", "stats", "supported_ops", "to_relax"]
