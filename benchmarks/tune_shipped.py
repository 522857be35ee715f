#!/usr/bin/env python3
"""Tune the models whose databases ship with torch_tvm, on this host, and copy
the pruned databases into torch_tvm/tuning_dbs/<cpu>/<model>/.

    python benchmarks/tune_shipped.py                       # resnet18, mobilenet_v2, bert
    python benchmarks/tune_shipped.py --models bert --trials 600 --time-budget 1800

Batch 1, 2 threads (the issue's configuration). Work directories (with the full
MetaSchedule logs, for resuming) live in benchmarks/tuning/<cpu>/<model>/, which
git ignores; running again continues them. Only the pruned files and the key
are copied into the package. Each model's tuning time goes to
torch_tvm/tuning_dbs/<cpu>/times.json, which BENCHMARKS.md quotes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]
sys.path.insert(0, HERE)

import torch  # noqa: E402

import models  # noqa: E402
import torch_tvm  # noqa: E402
from torch_tvm import _tuning  # noqa: E402

SHIPPED_FILES = (_tuning.KEY_FILE, _tuning.CHOICES_FILE, _tuning.MS_WORKLOADS, _tuning.MS_RECORDS)


def cpu_dir() -> str:
    key = _tuning.host_key()
    return f"{key['mcpu']}-{key['cores']}c"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2", "bert"])
    ap.add_argument("--trials", type=int, default=400, help="MetaSchedule trials per model")
    ap.add_argument("--time-budget", type=float, default=1200, help="seconds per model")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu = cpu_dir()
    work_root = os.path.join(HERE, "tuning", cpu)
    os.makedirs(work_root, exist_ok=True)
    # Committed beside the shipped databases: BENCHMARKS.md quotes it.
    times_file = os.path.join(ROOT, "torch_tvm", "tuning_dbs", cpu, "times.json")
    os.makedirs(os.path.dirname(times_file), exist_ok=True)
    times = json.load(open(times_file)) if os.path.exists(times_file) else {}
    for name in args.models:
        model, x, _ = models.build(name, 1)
        work_dir = os.path.join(work_root, name)
        start = time.monotonic()
        entry = times.setdefault(name, {"seconds": 0.0, "trials": 0, "runs": 0})
        try:
            report = torch_tvm.tune(model, [x], work_dir, trials=args.trials,
                                    time_budget_s=args.time_budget, name=name)
        finally:  # a failed run's search time counts too (its records are kept)
            took = time.monotonic() - start
            entry["seconds"] += took
            json.dump(times, open(times_file, "w"), indent=1, sort_keys=True)
        entry["trials"] = sum(t.trials for t in report.tasks)
        entry["runs"] += 1
        entry["tasks"] = len(report.tasks)
        entry["tuned_kernels"] = sum(t.kept for t in report.tasks)
        entry["choices"] = len(report.choices)
        entry["cpu"] = _tuning.host_key()
        json.dump(times, open(times_file, "w"), indent=1, sort_keys=True)
        dest = os.path.join(ROOT, "torch_tvm", "tuning_dbs", cpu, name)
        os.makedirs(dest, exist_ok=True)
        for f in SHIPPED_FILES:
            src = os.path.join(work_dir, f)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(dest, f))
        print(f"{name}: {took:.0f} s, shipped to {dest}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
