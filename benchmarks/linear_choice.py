"""The three linear kernels of torch_tvm against each other, per GEMM shape.

    python benchmarks/linear_choice.py [--threads 2] [--rounds 40] [--cold]

torch_tvm runs a linear as a oneDNN inner product built once at prepack
(csrc/kernels/dnnl/direct_linear.h, the system oneDNN 2.6), as its own packed
GEMM (csrc/kernels/gemm/packed_gemm.h; AVX2/FMA, or AVX-512), or through PyTorch's
mkldnn::_linear_pointwise (its oneDNN 3.x, with ideep's per-call glue). This
script prepacks each shape every way through the same
torch_tvm.kernels.linear_prepack / linear globals the compiled code calls and
times them interleaved, many rounds: the evidence behind measuring the choice
per shape at compile time (torch_tvm/_linear_choice.py) rather than a size
rule. Shapes: the linears of the benchmark models and zoo transformers, batch 1.
--cold cycles through enough copies of each weight (>= 256 MB) that every
call reads its weight from memory, as a whole model's forward pass does.
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


KERNELS = ("onednn", "sgemm", "aten")


def _packed(kernel: str, w: torch.Tensor, b: torch.Tensor, rows: int, post: str):
    prepack = tvm_ffi.get_global_func("torch_tvm.kernels.linear_prepack")
    return prepack(tvm_ffi.from_dlpack(w.t().contiguous()), tvm_ffi.from_dlpack(b), rows, post,
                   [], "none" if post == "gelu" else "", kernel)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cold", action="store_true",
                        help="cycle through copies of each weight so it comes from memory")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    linear = tvm_ffi.get_global_func("torch_tvm.kernels.linear")
    kernel_of = tvm_ffi.get_global_func("torch_tvm.kernels.linear_kernel")
    print(f"CPU: {cpu_model()}, {args.threads} threads, median (p10-p90) us of {args.rounds} "
          f"interleaved rounds, weights {'cold (from memory)' if args.cold else 'hot (in cache)'}")
    print("| linear | M x K x N | " + " | ".join(KERNELS) + " | fastest | its GFLOP/s |")
    print("|---|---|" + "---:|" * (len(KERNELS) + 2))
    for name, m, k, n, post in SHAPES:
        x = torch.randn(m, k)
        w, b = torch.randn(n, k) / k ** 0.5, torch.randn(n)
        copies = max(1, (256 << 20) // (4 * k * n)) if args.cold else 1
        handles = {kn: [_packed(kn, w, b, m, post) for _ in range(copies)] for kn in KERNELS}
        refused = [kn for kn, hs in handles.items() if kernel_of(hs[0]) != kn]
        for kn in refused:
            print(f"({name}: {kn} cannot run here)")
            del handles[kn]
        xt = tvm_ffi.from_dlpack(x)
        outs = {kn: torch.from_dlpack(linear(xt, hs[0])) for kn, hs in handles.items()}
        for kn, y in outs.items():
            torch.testing.assert_close(y, outs["aten"], rtol=1e-4, atol=1e-4, msg=kn)
        reps = max(1, int(3e6 / (m * k * n / 1e3)))
        times = {kn: [] for kn in handles}
        for hs in handles.values():
            for i in range(3 * reps):
                linear(xt, hs[i % copies])
        call = 0
        for _ in range(args.rounds):
            for kn, hs in handles.items():
                t = time.perf_counter()
                for i in range(reps):
                    linear(xt, hs[(call + i) % copies])
                times[kn].append((time.perf_counter() - t) / reps * 1e6)
            call += reps

        def cell(kn):
            if kn not in times:
                return "-"
            q = statistics.quantiles(times[kn], n=10)
            return f"{statistics.median(times[kn]):.0f} ({q[0]:.0f}-{q[-1]:.0f})"

        best = min(times, key=lambda kn: statistics.median(times[kn]))
        gflops = 2 * m * k * n / statistics.median(times[best]) / 1e3
        print(f"| {name} | {m} x {k} x {n} | " + " | ".join(cell(kn) for kn in KERNELS) +
              f" | {best} | {gflops:.0f} |")


if __name__ == "__main__":
    main()
