"""Where a fused scaled_dot_product_attention beats the spelled-out form.

    python benchmarks/sdpa_choice.py [--threads 2] [--rounds 60]

torch_tvm converts scaled_dot_product_attention either to one fused extern
kernel (torch_tvm.kernels.aten_sdpa: torch_tvm's packed attention without a
mask, ATen's fused kernel with one) or to matmul / softmax / matmul, whose
matmuls run on the same BLAS as here (torch_tvm.kernels.matmul is
at::matmul). This script times ATen's fused kernel and the spelled-out form
in eager, and the packed attention through the same global the compiled code
calls, interleaved, per sequence length: the threshold kFusedSdpaMinScores in
csrc/convert/ops/attention.cpp, and the packed kernel against ATen's.
"""
from __future__ import annotations

import argparse
import statistics
import time

import os

import torch
import torch.nn.functional as F
import tvm_ffi

import torch_tvm  # noqa: F401  (registers the kernels)
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
    sdpa = tvm_ffi.get_global_func("torch_tvm.kernels.aten_sdpa")
    no_mask, not_causal = tvm_ffi.from_dlpack(torch.zeros(0)), tvm_ffi.from_dlpack(
        torch.zeros(1, dtype=torch.long))
    os.environ.pop("TORCH_TVM_SDPA_KERNEL", None)  # the packed kernel, where the CPU runs it
    print("| heads x head dim | L = S | ATen fused (us) | spelled out (us) | packed (us) | "
          "ATen fused vs spelled out | packed vs ATen fused |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with torch.no_grad():
        for heads, dim in ((2, 32), (4, 32), (12, 64)):
            for length in (64, 128, 197, 256, 384, 512, 962):
                q, k, v = (torch.randn(1, heads, length, dim) for _ in range(3))
                tq, tk, tv = (tvm_ffi.from_dlpack(t) for t in (q, k, v))
                scale = tvm_ffi.from_dlpack(torch.tensor([dim ** -0.5], dtype=torch.float64))
                fns = {"fused": lambda: F.scaled_dot_product_attention(q, k, v),
                       "spelled": lambda: _spelled_out(q, k, v),
                       "packed": lambda: sdpa(tq, tk, tv, no_mask, not_causal, scale)}
                torch.testing.assert_close(torch.from_dlpack(fns["packed"]()), fns["fused"](),
                                           rtol=1e-5, atol=1e-5)
                times = {name: [] for name in fns}
                for fn in fns.values():
                    for _ in range(5):
                        fn()
                for _ in range(args.rounds):
                    for name, fn in fns.items():
                        t = time.perf_counter()
                        fn()
                        times[name].append(time.perf_counter() - t)
                fused, spelled, packed = (statistics.median(times[n]) * 1e6
                                          for n in ("fused", "spelled", "packed"))
                print(f"| {heads} x {dim} | {length} | {fused:.0f} | {spelled:.0f} | "
                      f"{packed:.0f} | {spelled / fused:.2f}x | {fused / packed:.2f}x |")


if __name__ == "__main__":
    main()
