"""torch_tvm: run TorchScript subgraphs as TVM-compiled code."""
import tvm  # noqa: F401  (registers TVM's globals before the core loads)
import torch

from . import _build  # noqa: F401  (registers torch_tvm.build_relax)
from . import _C
from ._api import (disable, enable, explain, is_enabled, stats, supported_ops, to_relax, tune,
                   tuning_database)

__all__ = ["enable", "disable", "is_enabled", "explain", "stats", "supported_ops", "to_relax",
           "tune", "tuning_database"]
