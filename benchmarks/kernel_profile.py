"""Per-kernel profile of a model compiled by torch_tvm: where the time goes.

    python benchmarks/kernel_profile.py mobilenet_v2 [--batch 1] [--threads 2] [--runs 20]
    python benchmarks/kernel_profile.py vit_tiny_patch16_224     # any zoo.py row too

It compiles the model through the TorchScript path (shipped tuning databases
apply as usual), keeps the Relax VM executable of each compiled group, and
times every VM Call instruction with the VM's instrument hook. The hook adds a
few microseconds per call, so the total is above a plain call; the table is
for finding where the time goes, not for a headline figure (run.py is).
"""
from __future__ import annotations

import argparse
import collections
import statistics
import time

import torch
import tvm
import tvm_ffi

import torch_tvm
import torch_tvm._build as _build
from torch_tvm._tuning import host_key
from bench_common import cpu_model
from models import build


def _capture_builds() -> list:
    built = []
    original = _build.build_relax

    @tvm_ffi.register_global_func("torch_tvm.build_relax", override=True)
    def capture(mod, target, opt_level):
        result = original(mod, target, opt_level)
        built.append(result)
        return result

    return built


def _build_model(name: str, batch: int):
    """A run.py model (resnet18, mobilenet_v2, bert, ...) or any zoo.py row by name."""
    import zoo_models

    entry = zoo_models.ZOO_BY_NAME.get(name)
    if entry is None:
        model, x, _desc = build(name, batch)
        return model, x
    return entry.build().eval(), zoo_models.make_input(entry, batch, 0)


def profile(vm, args, runs: int) -> tuple[dict, list[float]]:
    """{func symbol: [summed seconds per run]}, and the plain call times."""
    per_run: dict[str, list[float]] = collections.defaultdict(lambda: [0.0] * runs)
    counts: dict[str, int] = collections.Counter()
    state = {"run": 0, "start": {}}

    def instrument(func, symbol, before, ret, *a):
        now = time.perf_counter()
        if before:
            state["start"][symbol] = now
        else:
            per_run[symbol][state["run"]] += now - state["start"].pop(symbol)
            if state["run"] == 0:
                counts[symbol] += 1
        return 0

    main = vm["main"]
    plain = []
    for _ in range(3):
        main(*args)
    for _ in range(runs):
        t = time.perf_counter()
        main(*args)
        plain.append(time.perf_counter() - t)
    vm.set_instrument(instrument)
    for i in range(runs):
        state["run"] = i
        main(*args)
    vm.set_instrument(None)
    return {k: (counts[k], v) for k, v in per_run.items()}, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    built = _capture_builds()
    model, x = _build_model(args.model, args.batch)
    inputs = (x,)
    torch_tvm.enable()
    with torch.no_grad():
        traced = torch.jit.trace(model, inputs, check_trace=False, strict=False)
        for _ in range(3):
            traced(*inputs)
    print(f"CPU: {cpu_model()} ({host_key()['mcpu']}), {args.threads} threads, batch {args.batch}; "
          f"{len(built)} group(s) compiled; tuning: {torch_tvm.stats()['tuning']['databases']}")
    if len(built) != 1 or torch_tvm.stats()["fallback_calls"]:
        print("note: only the last group is profiled, and ops outside it are not timed")
    executable, _owner = built[-1]
    vm = tvm.runtime.vm.VirtualMachine(tvm.runtime.Executable(executable), tvm.cpu())
    # The group's inputs are the model's tensor inputs, in order.
    tvm_args = [tvm.runtime.from_dlpack(t.contiguous()) for t in inputs]
    table, plain = profile(vm, tvm_args, args.runs)
    rows = sorted(((statistics.median(v), n, k) for k, (n, v) in table.items()), reverse=True)
    total = sum(r[0] for r in rows)
    print(f"plain VM call: median {statistics.median(plain) * 1e3:.2f} ms; "
          f"instrumented sum of medians {total * 1e3:.2f} ms")
    print(f"{'ms':>7} {'share':>6} {'calls':>5}  function")
    for med, n, k in rows[: args.top]:
        print(f"{med * 1e3:7.3f} {med / total:6.1%} {n:5d}  {k}")


if __name__ == "__main__":
    main()
