"""Helpers shared by kernels.py and zoo.py (what run.py / worker.py / report.py already
offer, those two import from there). Importing this module only defines things."""
from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import shlex
import sys
import time


def pct(s: list[float], q: float) -> float:
    """The q-quantile of the sorted list s, linearly interpolated."""
    if len(s) == 1:
        return s[0]
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summarize(ts: list[float]) -> dict:
    """Sample count and min / mean / p10 / p25 / median / p75 / p90 in ms of ts (seconds);
    {} for no samples."""
    if not ts:
        return {}
    s = sorted(ts)
    ms = {f"{n}_ms": pct(s, q) * 1e3 for n, q in
          (("p10", 0.10), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p90", 0.90))}
    return dict(n=len(s), min_ms=s[0] * 1e3, mean_ms=sum(s) / len(s) * 1e3, **ms)


def geomean(vals) -> float | None:
    """Geometric mean of the non-zero values, None without any."""
    vals = [v for v in vals if v]
    return math.exp(sum(math.log(v) for v in vals) / len(vals)) if vals else None


@contextlib.contextmanager
def gc_paused():
    """Collect, then keep the cyclic garbage collector off for the timed block."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def idle_note(max_wait: float) -> str:
    """With max_wait > 0, wait up to max_wait s for an idle machine (run.wait_idle); the
    note for the progress line when that took 2.5 s or more, else ""."""
    from run import wait_idle  # noqa: PLC0415

    waited = wait_idle(max_wait) if max_wait > 0 else 0.0
    return f" (waited {waited:.0f} s for an idle machine)" if waited >= 2.5 else ""


def command_line(prog: str, argv) -> str:
    """How this run was started, for the report (the real arguments only when main() got
    none of its own)."""
    return prog + (" " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else "")


def cpu_model(fallback: str | None = None) -> str:
    """The CPU's model name from /proc/cpuinfo; else fallback (platform.processor() when
    fallback is None)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() if fallback is None else fallback


def log_stdout(msg: str) -> None:
    print(msg, flush=True)


def import_torch_tvm(log=log_stdout, errors=(Exception,), retries: int = 3,
                     wait_s: float = 60.0):
    """Import the installed torch_tvm, which may be reinstalled under us: on one of
    `errors`, log it, forget the half-imported package, wait and retry."""
    import importlib  # noqa: PLC0415

    for attempt in range(retries + 1):
        try:
            return importlib.import_module("torch_tvm")
        except errors as e:
            if attempt == retries:
                raise
            log(f"import torch_tvm failed ({type(e).__name__}: {e}); retrying in "
                f"{wait_s:.0f} s")
            for k in [k for k in sys.modules if k == "torch_tvm" or k.startswith("torch_tvm.")]:
                del sys.modules[k]
            time.sleep(wait_s)


def save_json(path: str, data: dict) -> None:
    """Write data as JSON through a temporary file, so a reader never sees half of it."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
