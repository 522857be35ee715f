"""ResNet18 (random weights) through torch_tvm against PyTorch, with numbers.

Prints median latency of eager PyTorch, TorchScript (default backend) and
torch_tvm on the same input, the first-call (compile) time, the numerical
difference, and torch_tvm's explain() report.
"""
import argparse
import statistics
import time
import warnings

warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", category=DeprecationWarning)

import torch  # noqa: E402
import torchvision  # noqa: E402

import torch_tvm  # noqa: E402


def timed(fn, x, iters):
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn(x)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples), samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()
    x = torch.randn(1, 3, 224, 224)

    with torch.no_grad():
        ref = model(x)
        ts = torch.jit.trace(model, x)
        for _ in range(3):
            ts(x)
        torch_tvm.enable(num_threads=args.threads)
        tvm_mod = torch.jit.trace(model, x)
        t0 = time.perf_counter()
        for _ in range(3):  # profiling run, optimisation + TVM compile
            y = tvm_mod(x)
        first_calls = time.perf_counter() - t0
        eager_ms, _ = timed(model, x, args.iters)
        ts_ms, _ = timed(ts, x, args.iters)
        tvm_ms, _ = timed(tvm_mod, x, args.iters)

    err = ((y - ref).abs().max() / ref.abs().max()).item()
    print(f"ResNet18 batch 1, {args.threads} thread(s), median of {args.iters} runs")
    print(f"  eager PyTorch        : {eager_ms:9.2f} ms")
    print(f"  TorchScript default  : {ts_ms:9.2f} ms")
    print(f"  torch_tvm            : {tvm_ms:9.2f} ms   (first 3 calls incl. compile: {first_calls:.1f} s)")
    print(f"  max relative error vs eager: {err:.2e}")
    print(torch_tvm.explain(tvm_mod, x))


if __name__ == "__main__":
    main()
