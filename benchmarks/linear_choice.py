"""The direct oneDNN linear against PyTorch's oneDNN op, per GEMM shape.

    python benchmarks/linear_choice.py [--threads 2] [--rounds 40]

torch_tvm runs a linear either as a oneDNN inner product built once at
prepack (csrc/kernels/dnnl/direct_linear.h, the system oneDNN 2.6) or through
PyTorch's mkldnn::_linear_pointwise (its oneDNN 3.x, with ideep's per-call
glue). This script prepacks each shape both ways through the same
torch_tvm.kernels.linear_prepack / linear globals the compiled code calls and
times them interleaved, many rounds: the evidence behind measuring the choice
per shape at compile time (torch_tvm/_linear_choice.py) rather than a size
rule. Shapes: the linears of the benchmark models and zoo transformers, batch 1.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import tvm_ffi

import torch_tvm  # noqa: F401  (registers the kernels)
from bench_common import cpu_model

# (where it comes from, rows M, in K, out N, post-op)
SHAPES = [
    ("resnet18 fc", 1, 512, 1000, "none"),
    ("mobilenet_v2 classifier", 1, 1280, 1000, "none"),
    ("vit_tiny qkv", 197, 192, 576, "none"),
    ("vit_tiny proj", 197, 192, 192, "none"),
    ("vit_tiny fc1 + gelu", 197, 192, 768, "gelu"),
    ("vit_tiny fc2", 197, 768, 192, "none"),
    ("bert_small qkv", 128, 512, 512, "none"),
    ("bert_small fc1 + gelu", 128, 512, 2048, "gelu"),
    ("bert_small fc2", 128, 2048, 512, "none"),
    ("bert-base qkv", 128, 768, 768, "none"),
    ("bert-base fc1 + gelu", 128, 768, 3072, "gelu"),
    ("bert-base fc2", 128, 3072, 768, "none"),
    ("vit_b_16 fc1 + gelu", 197, 768, 3072, "gelu"),
]


def _packed(kernel: str, w: torch.Tensor, b: torch.Tensor, rows: int, post: str):
    prepack = tvm_ffi.get_global_func("torch_tvm.kernels.linear_prepack")
    return prepack(tvm_ffi.from_dlpack(w.t().contiguous()), tvm_ffi.from_dlpack(b), rows, post,
                   [], "none" if post == "gelu" else "", kernel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    linear = tvm_ffi.get_global_func("torch_tvm.kernels.linear")
    counters = tvm_ffi.get_global_func("torch_tvm.kernels.counters")
    print(f"CPU: {cpu_model()}, {args.threads} threads, median (p10-p90) of {args.rounds} "
          "interleaved rounds")
    print("| linear | M x K x N | MACs | direct oneDNN (us) | PyTorch's op (us) | direct faster by |")
    print("|---|---|---:|---:|---:|---:|")
    for name, m, k, n, post in SHAPES:
        x = torch.randn(m, k)
        w, b = torch.randn(n, k) / k ** 0.5, torch.randn(n)
        handles = {mode: _packed(mode, w, b, m, post) for mode in ("onednn", "aten")}
        xt = tvm_ffi.from_dlpack(x)
        before = counters()["linear_direct_calls"]
        outs = {mode: torch.from_dlpack(linear(xt, h)) for mode, h in handles.items()}
        if counters()["linear_direct_calls"] != before + 1:
            raise SystemExit("the direct kernel did not run (linear_direct_refused: "
                             f"{counters()['linear_direct_refused']})")
        torch.testing.assert_close(outs["onednn"], outs["aten"], rtol=1e-4, atol=1e-4)
        reps = max(1, int(3e6 / (m * k * n / 1e3)))
        times = {mode: [] for mode in handles}
        for h in handles.values():
            for _ in range(3 * reps):
                linear(xt, h)
        for _ in range(args.rounds):
            for mode, h in handles.items():
                t = time.perf_counter()
                for _ in range(reps):
                    linear(xt, h)
                times[mode].append((time.perf_counter() - t) / reps * 1e6)

        def cell(v):
            q = statistics.quantiles(v, n=10)
            return f"{statistics.median(v):.0f} ({q[0]:.0f}-{q[-1]:.0f})"

        d, a = (statistics.median(times[mode]) for mode in ("onednn", "aten"))
        print(f"| {name} | {m} x {k} x {n} | {m * k * n / 1e6:.1f} M | "
              f"{cell(times['onednn'])} | {cell(times['aten'])} | {a / d:.2f}x |")


if __name__ == "__main__":
    main()
