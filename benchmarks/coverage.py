#!/usr/bin/env python3
"""Op coverage of torch_tvm on the models named by the coverage target: every
torchvision classification model of the zoo, transformers' BERT / GPT-2 / T5
encoder and a torch.nn TransformerEncoder (random weights, batch 1).

For each model, traced and run under torch_tvm (one child process per model,
so a crash cannot take the table down): the compute ops inside TVM groups,
the compute ops left to PyTorch (with their kinds), groups that fell back, and
max rel error vs eager. "Compute op" = every aten op in the optimised graph
(group subgraphs included) except shape plumbing: size, dim, Int,
NumToTensor, ScalarImplicit, list construction/indexing (these run in
PyTorch by design and cost nothing). Views count (strict).

    python3.11 benchmarks/coverage.py [--models tv_resnet18,bert_small]   # ~15 min all
    python3.11 benchmarks/coverage.py --all-torchvision    # + every torchvision classifier

--all-torchvision adds every classification model torchvision lists (80 in 0.29, from
alexnet to vit_h_14; 224x224 input, 299 for inception_v3). Results accumulate in
coverage_results.json (a run over some models keeps the other rows), and coverage.md is
regenerated from it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PLUMBING = {"aten::size", "aten::dim", "aten::numel", "aten::Int", "aten::ScalarImplicit", "aten::__getitem__",
            "aten::len", "aten::list", "aten::format", "aten::warn", "aten::__is__",
            "aten::__isnot__", "aten::eq.int", "aten::floordiv", "aten::add.int", "aten::mul.int",
            "aten::sub.int"}
TRANSFORMERS = ("bert_small", "gpt2_small", "t5_encoder_small", "nn_transformer_encoder")


def _child(name: str) -> dict:
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]
    sys.path.insert(0, HERE)
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import torch_tvm
    from zoo_models import ZOO, make_input

    torch.set_num_threads(2)
    entry = next((e for e in ZOO if e.name == name), None)
    if entry is None and name.startswith("tv_"):  # any torchvision classifier
        from zoo_models import tv
        arch = name[3:]
        entry = tv(arch, arch, 299 if arch == "inception_v3" else 224)
    torch.manual_seed(0)
    model = entry.build().eval()
    x = make_input(entry, 1, 0)
    with torch.no_grad():
        ref = model(x)
        torch_tvm.enable()
        traced = torch.jit.trace(model, x, check_trace=False)
        for _ in range(3):
            out = traced(x)
        graph = traced.graph_for(x)
        report = torch_tvm.explain(traced, x)
        torch_tvm.disable()

    def kind(n):
        k = n.kind()
        return k if k.startswith("aten::") and k not in PLUMBING else None

    inside, outside = 0, {}

    def walk(block, in_group):
        nonlocal inside
        for n in block.nodes():
            if n.kind() == "tvm::CompilationGroup":
                walk(n.g("Subgraph"), True)
                continue
            for b in n.blocks():
                walk(b, in_group)
            k = kind(n)
            if k is None:
                continue
            if in_group:
                inside += 1
            else:
                outside[k] = outside.get(k, 0) + 1
    walk(graph, False)
    err = ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
    return dict(model=name, inside=inside, outside=outside, groups=len(report.groups),
                fallbacks=report.num_fallbacks, rel_err=err)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="")
    ap.add_argument("--all-torchvision", action="store_true",
                    help="also every torchvision classification model")
    ap.add_argument("--child", default="")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child)))
        return
    sys.path.insert(0, HERE)
    from zoo_models import ZOO
    names = args.models.split(",") if args.models else \
        [e.name for e in ZOO if e.name.startswith("tv_") and e.family and e.name not in
         ("tv_ssdlite320_mobilenet_v3", "tv_lraspp_mobilenet_v3", "tv_r3d_18")] + list(TRANSFORMERS)
    if args.all_torchvision:
        import torchvision
        names += [f"tv_{a}" for a in torchvision.models.list_models(module=torchvision.models)
                  if f"tv_{a}" not in names]
    results_path = os.path.join(HERE, "coverage_results.json")
    saved = {}
    if os.path.exists(results_path):
        with open(results_path) as f:
            saved = {r["model"]: r for r in json.load(f)}
    rows = []
    for name in names:
        try:
            proc = subprocess.run([sys.executable, __file__, "--child", name],
                                  capture_output=True, text=True, timeout=1800)
            row = json.loads(proc.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = dict(model=name, error="timed out after 1800 s")
        except Exception:  # noqa: BLE001 - the child crashed or printed nothing
            row = dict(model=name, error=(proc.stderr or "no output").strip().splitlines()[-1][:200])
        row["measured"] = f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}"
        rows.append(row)
        print(row, flush=True)
    # A run over some models keeps the other rows of earlier runs (each row
    # says when it was measured).
    fresh = {r["model"] for r in rows}
    rows += [r for name, r in saved.items() if name not in fresh]
    order = {n: i for i, n in enumerate(
        [e.name for e in ZOO if e.name.startswith("tv_")] + list(TRANSFORMERS))}
    rows.sort(key=lambda r: (order.get(r["model"], len(order)), r["model"]))
    with open(results_path, "w") as f:
        json.dump(rows, f, indent=1)

    import torch_tvm  # noqa: F401 - for the CPU name
    from bench_common import cpu_model
    lines = ["# Op coverage on the coverage target's models", "",
             f"Generated by `benchmarks/coverage.py` from `coverage_results.json` (last run "
             f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, CPU {cpu_model()}); batch 1, "
             "random weights; each row says when it was measured. Compute ops are aten ops of the "
             "optimised graph except shape plumbing (size, dim, Int, list ops); views count. "
             "Target: at least 95% inside TVM groups, no group falling back.", "",
             "| model | compute ops in TVM | left to PyTorch | coverage | groups | fallbacks | "
             "max rel err | ops left (kinds) | measured (UTC) |",
             "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    below = []
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error']} | | | | | | | {r['measured']} |")
            below.append(r["model"])
            continue
        out = sum(r["outside"].values())
        cov = r["inside"] / max(1, r["inside"] + out)
        if cov < 0.95 or r["fallbacks"]:
            below.append(r["model"])
        kinds = ", ".join(f"{k.split('::')[1]} {v}" for k, v in
                          sorted(r["outside"].items(), key=lambda kv: -kv[1])[:4])
        lines.append(f"| {r['model']} | {r['inside']} | {out} | {cov:.1%} | {r['groups']} | "
                     f"{r['fallbacks']} | {r['rel_err']:.1e} | {kinds} | {r.get('measured', '')} |")
    lines += ["", f"Below target: {', '.join(below) if below else 'none'}.", ""]
    with open(os.path.join(HERE, "coverage.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
