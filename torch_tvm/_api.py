"""The Python API: thin wrappers over the C++ core."""
from __future__ import annotations

import os

import torch
import tvm_ffi

from . import _C, _tuning, _winograd
from ._targets import normalize_target

_DEFAULTS = dict(opt_level=3, strict=False, require_full_compilation=False, target=None,
                 num_threads=None, cache_size=16, min_group_size=2, winograd="auto",
                 tuning_db=None, shipped_tuning=True, recompile_limit=8)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"torch_tvm: {name} must be an int, not {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"torch_tvm: {name} must be {bounds}, got {value}")
    return value


def enable(opt_level: int = 3, strict: bool = False, target=None,
           num_threads: int | None = None, cache_size: int = 16, min_group_size: int = 2,
           require_full_compilation: bool = False, winograd: str = "auto",
           tuning_db: str | None = None, shipped_tuning: bool = True,
           recompile_limit: int = 8) -> None:
    """Turn on the TorchScript pass that runs supported subgraphs through TVM.

    TVM's parallel loops and the oneDNN kernels both run on PyTorch's OpenMP
    pool, so the thread budget is torch.get_num_threads(). `num_threads` sets
    it (through torch.set_num_threads, once, here).

    `target` (default: llvm for this host's CPU) takes a dict, TVM's JSON
    string or the classic "llvm -mcpu=... -mattr=..." string; a target this
    CPU cannot execute is refused (torch_tvm/_targets.py). Every option is
    checked here, with a ValueError naming the valid values.

    `strict=True` raises where a group would fall back (a failed conversion or
    compile). `require_full_compilation=True` raises when the graph is
    partitioned if any op cannot run in TVM (no converter, or its support
    check refused the call), naming every such op and why; ops that are only
    scalar/shape plumbing or were left out for speed (small groups) do not count.

    `winograd` picks the kernel of 3x3 stride-1 convolutions (torch_tvm/_winograd.py):
    "auto" measures oneDNN against Winograd F(2,3) and F(4,3) on each new shape at
    its first compile and keeps the fastest; "off" always runs oneDNN; "F2"/"F4"
    always run that Winograd tile.

    `tuning_db` applies the database that torch_tvm.tune() wrote to that
    directory (tuned TVM kernels and measured kernel choices); the variable
    TORCH_TVM_TUNING_DB and `with torch_tvm.tuning_database(dir):` do too. The
    databases shipped with torch_tvm apply when they match this host, unless
    `shipped_tuning=False`. A database tuned on another CPU or TVM version is
    skipped with one warning (torch_tvm/_tuning.py).

    `recompile_limit` caps the distinct input specs (shapes, dtypes, layouts)
    one group compiles; a new spec past it runs in PyTorch, with one warning
    and the group's `over_recompile_limit` counter (as torch.compile's
    recompile_limit). Shapes that follow the data would otherwise compile on
    every call.
    """
    _check_int("opt_level", opt_level, 0, 3)
    _check_int("cache_size", cache_size, 1)
    _check_int("min_group_size", min_group_size, 1)
    _check_int("recompile_limit", recompile_limit, 1)
    if num_threads is not None:
        _check_int("num_threads", num_threads, 1)
    for name, flag in (("strict", strict), ("require_full_compilation", require_full_compilation),
                       ("shipped_tuning", shipped_tuning)):
        if not isinstance(flag, bool):
            raise ValueError(f"torch_tvm: {name} must be True or False, not {flag!r}")
    if winograd not in _winograd.MODES:
        raise ValueError(f"torch_tvm: winograd must be one of {', '.join(map(repr, _winograd.MODES))}, "
                         f"not {winograd!r}")
    if tuning_db is not None:
        if not isinstance(tuning_db, (str, os.PathLike)):
            raise ValueError(f"torch_tvm: tuning_db must be a directory path, not "
                             f"{type(tuning_db).__name__}")
        tuning_db = str(_tuning.open_database(tuning_db).path)  # checked now, not at compile
    target_json = normalize_target(target)
    if num_threads is not None and num_threads != torch.get_num_threads():
        torch.set_num_threads(int(num_threads))
    _C.set_options(True, int(opt_level), strict, require_full_compilation, target_json,
                   int(num_threads or 0), int(cache_size), int(min_group_size),
                   int(recompile_limit))
    _winograd.mode = winograd
    _tuning.option_path, _tuning.use_shipped = tuning_db, shipped_tuning
    _C.install_pass()


def disable() -> None:
    """Turn the pass off. Plans already optimised keep their groups."""
    o = _C.get_options()
    _C.set_options(False, o["opt_level"], o["strict"], o["require_full_compilation"], o["target"],
                   o["num_threads"], o["cache_size"], o["min_group_size"],
                   o["recompile_limit"])
    _C.remove_pass()


def is_enabled() -> bool:
    return bool(_C.get_options()["enabled"])


def supported_ops() -> list[str]:
    """The converter table's keys: aten operator names with overloads."""
    return list(_C.supported_ops())


def stats() -> dict:
    """Counters summed over every live compilation group, plus per group."""
    groups = _C.group_stats()
    keys = ["calls", "cache_hits", "cache_misses", "compiles", "compile_failures",
            "over_recompile_limit", "fallback_calls", "input_copies", "evictions", "compile_seconds"]
    total = {k: sum(g[k] for g in groups) for k in keys}
    total["groups"] = groups
    # Process-wide extern-kernel counters (oneDNN conv/linear, BLAS matmul).
    total["kernels"] = {str(k): int(v) for k, v in
                        tvm_ffi.get_global_func("torch_tvm.kernels.counters")().items()}
    total["tuning"] = _tuning.describe()
    return total


from ._explain import explain  # noqa: E402
from ._relax import to_relax  # noqa: E402
from ._tune import tune  # noqa: E402
from ._tuning import tuning_database  # noqa: E402
