"""Where ATen's fused scaled_dot_product_attention beats the spelled-out form.

    python benchmarks/sdpa_choice.py [--threads 2] [--rounds 60]

torch_tvm converts scaled_dot_product_attention either to a call of ATen's
fused kernel (torch_tvm.kernels.aten_sdpa) or to matmul / softmax / matmul,
whose matmuls run on the same BLAS as here (torch_tvm.kernels.matmul is
at::matmul). This script times both forms in eager, interleaved, per sequence
length, to place the threshold kFusedSdpaMinScores in
csrc/convert/ops/attention.cpp.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from bench_common import cpu_model


def _spelled_out(q, k, v):
    s = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return torch.matmul(torch.softmax(s, -1), v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_model()}, {args.threads} threads, median of {args.rounds} interleaved rounds")
    print("| heads x head dim | L = S | fused (us) | spelled out (us) | fused faster by |")
    print("|---|---:|---:|---:|---:|")
    with torch.no_grad():
        for heads, dim in ((2, 32), (4, 32), (12, 64)):
            for length in (64, 128, 197, 256, 384, 512, 962):
                q, k, v = (torch.randn(1, heads, length, dim) for _ in range(3))
                fns = {"fused": lambda: F.scaled_dot_product_attention(q, k, v),
                       "spelled": lambda: _spelled_out(q, k, v)}
                times = {name: [] for name in fns}
                for fn in fns.values():
                    for _ in range(5):
                        fn()
                for _ in range(args.rounds):
                    for name, fn in fns.items():
                        t = time.perf_counter()
                        fn()
                        times[name].append(time.perf_counter() - t)
                fused, spelled = (statistics.median(times[n]) * 1e6 for n in ("fused", "spelled"))
                print(f"| {heads} x {dim} | {length} | {fused:.0f} | {spelled:.0f} | "
                      f"{spelled / fused:.2f}x |")


if __name__ == "__main__":
    main()
