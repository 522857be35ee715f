#!/usr/bin/env python3
"""torch_tvm with its measured Winograd choice (winograd="auto", the default) against
winograd="off" (oneDNN for every conv) and TorchScript, on torchvision CNNs with 3x3
stride-1 convolutions. One process; the three variants are timed round-robin.

    python3.11 benchmarks/winograd_ab.py [--models resnet18,vgg11] [--rounds 15]

Writes benchmarks/winograd_ab.md (medians with p10/p90, the CPU, LLVM's mcpu, first-call
times).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]
sys.path.insert(0, HERE)

DEFAULT_MODELS = "resnet18,resnet34,resnet50,vgg11,googlenet"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=DEFAULT_MODELS)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "winograd_ab.md"))
    args = ap.parse_args()

    warnings.filterwarnings("ignore")
    import numpy as np
    import torch
    import torchvision
    import torch_tvm
    from bench_common import cpu_model

    torch.set_num_threads(args.threads)
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = getattr(torchvision.models, name)().eval()
        x = torch.randn(1, 3, 224, 224)
        mods, first = {}, {}
        with torch.no_grad():
            ref = model(x)
            ts = torch.jit.trace(model, x)
            ts(x)
            ts(x)
            mods["TorchScript"] = ts
            for mode in ("off", "auto"):
                torch_tvm.enable(winograd=mode)
                tr = torch.jit.trace(model, x)
                start = time.perf_counter()
                for _ in range(3):
                    out = tr(x)
                first[mode] = time.perf_counter() - start
                torch_tvm.disable()
                err = ((out - ref).abs().max() / ref.abs().max()).item()
                mods[mode] = tr
            times = {k: [] for k in mods}
            for _ in range(args.rounds):
                for k, m in mods.items():
                    start = time.perf_counter()
                    m(x)
                    times[k].append((time.perf_counter() - start) * 1e3)
        stat = {k: (np.median(v), np.percentile(v, 10), np.percentile(v, 90))
                for k, v in times.items()}
        rows.append((name, stat, first, err))
        print(name, {k: round(v[0], 1) for k, v in stat.items()}, flush=True)

    cell = lambda s: f"{s[0]:.1f} ({s[1]:.1f}-{s[2]:.1f})"  # noqa: E731
    lines = [
        "# Winograd on/off A/B (benchmarks/winograd_ab.py)", "",
        f"Run {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu_model()} "
        f"(LLVM mcpu `{torch_tvm._C.host_cpu()}`), batch 1, {args.threads} threads, "
        f"{args.rounds} interleaved rounds; median ms (p10-p90). First calls: the three calls "
        "that trace, profile, compile and run.", "",
        "| model | TorchScript | torch_tvm winograd='off' | torch_tvm (auto) | off / auto | "
        "first calls off (s) | first calls auto (s) | rel err (auto) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, stat, first, err in rows:
        lines.append(f"| {name} | {cell(stat['TorchScript'])} | {cell(stat['off'])} | "
                     f"{cell(stat['auto'])} | {stat['off'][0] / stat['auto'][0]:.2f}x | "
                     f"{first['off']:.0f} | {first['auto']:.0f} | {err:.1e} |")
    lines += ["", "Choices made (oneDNN / Winograd per 3x3 stride-1 conv shape, times in us):", ""]
    for d in torch_tvm._winograd.decisions():
        times = ", ".join(f"{k} {v:.0f}" for k, v in d["times_us"].items())
        lines.append(f"- {d['shape']} pad {d['pad']}: {d['kernel']} ({times})")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
