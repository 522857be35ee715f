"""torch_tvm: run TorchScript subgraphs as TVM-compiled code."""
import tvm  # noqa: F401  (registers TVM's globals before the core loads)
import torch

from . import _build  # noqa: F401  (registers torch_tvm.build_relax)


def _load_system_onednn() -> None:
    """Load the system oneDNN (csrc/kernels/dnnl/) before the core links it.

    torch exports a std::call_once thunk of its own oneDNN's GEMM set-up under
    the name the system oneDNN uses for its own. Loaded as a dependency of the
    core, which also needs libtorch_cpu, the system oneDNN binds that name to
    torch's copy and its GEMM then fails to run. Loaded alone first, it binds
    to itself. If this fails the direct linear kernel refuses itself at
    prepack (stats()["kernels"]["linear_direct_refused"]) and PyTorch's op runs.
    """
    import ctypes

    try:
        ctypes.CDLL("libdnnl.so.2")  # Debian libdnnl-dev's soname; see CMakeLists.txt
    except OSError:
        pass


_load_system_onednn()
from . import _C  # noqa: E402
from ._api import (disable, enable, explain, is_enabled, stats, supported_ops, to_relax, tune,
                   tuning_database)

__all__ = ["enable", "disable", "is_enabled", "explain", "stats", "supported_ops", "to_relax",
           "tune", "tuning_database"]
