#!/usr/bin/env python3
"""Kernel benchmark: small traced functions, TorchScript vs torch_tvm, in ONE process.

Every row is a small function (one op, or one op and a cheap consumer such as `+ x`)
traced twice with torch.jit.trace:

- TorchScript: torch_tvm disabled, traced, warmed up (--warmup calls, so the profiling
  executor has built and cached its optimised plan without any TVM group);
- torch_tvm:  torch_tvm.enable(num_threads=T, min_group_size=...), a fresh trace,
  warmed up until a call compiles nothing new (at least --warmup calls), then
  torch_tvm.disable() again (the optimised plan keeps its TVM groups).

Both are then timed round-robin (the order shuffled every round), each sample being
`inner` back-to-back calls so that microsecond kernels are not lost in timer jitter.
Each row records median / p10 / p25 / p75 / p90, the ratio TorchScript median /
torch_tvm median (> 1: torch_tvm faster), the TVM groups of the torch_tvm plan (and that
the TorchScript plan has none), the fallback calls, and max relative error vs eager.

    python3.11 benchmarks/kernels.py                       # batch 1, threads 1 (~3 min)
    python3.11 benchmarks/kernels.py --batch 1,8 --threads 1,2
    python3.11 benchmarks/kernels.py --quick --filter gelu --filter softmax
    python3.11 benchmarks/kernels.py --list                # rows, skipped unary ops
    python3.11 benchmarks/kernels.py --report-only         # rewrite kernels.md from JSON

Results accumulate in benchmarks/kernels_results.json (keyed by row, batch, threads;
a rerun replaces only the rows it ran) and benchmarks/kernels.md is regenerated from all
of it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import resource
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Never pick up the source tree's torch_tvm/ (it has no built _C): use the installed one.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]

warnings.filterwarnings("ignore", category=FutureWarning)  # "torch.jit.trace is deprecated"

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench_common import (command_line, cpu_model, gc_paused, geomean, idle_note,  # noqa: E402
                          import_torch_tvm, save_json, summarize)
from report import environment, esc, fmt_x  # noqa: E402 - benchmarks/report.py
from run import cpu_busy_s, csv_list  # noqa: E402 - benchmarks/run.py (definitions only)

DEFAULT_JSON = os.path.join(HERE, "kernels_results.json")
DEFAULT_MD = os.path.join(HERE, "kernels.md")
FAMILIES = ["elementwise", "normalization", "softmax", "reduction", "pooling", "layout"]


# --------------------------------------------------------------------------- rows

@dataclass
class Row:
    family: str
    kernel: str                        # what is computed, e.g. "gelu + x"
    layout: str                        # NCHW / NHWC (channels_last) / tokens
    fn: Callable
    inputs: Callable[[int], list]      # batch -> input tensors
    unary: str | None = None           # unary rows are skipped when not converted
    note: str = ""
    order: int = 0

    @property
    def id(self) -> str:
        return f"{self.family}/{self.kernel}/{self.layout}"


def _randn(*shape, cl=False, pos=False):
    def make(b, shape=shape):
        g = torch.Generator().manual_seed(hash(shape) & 0xFFFF)
        t = (torch.rand((b,) + shape, generator=g) + 0.1 if pos
             else torch.randn((b,) + shape, generator=g))
        return t.contiguous(memory_format=torch.channels_last) if cl else t
    return make


def _inputs(*makers):
    return lambda b: [m(b) for m in makers]


CNN = (64, 56, 56)          # ResNet stage 1 activation
TOK = (197, 768)            # ViT-B/16 tokens x hidden

# name -> (function, positive-only input domain). The function is torch.<name>, else
# F.<name>, unless SPECIAL_UNARY has it. Rows for names whose aten op is not in
# torch_tvm.supported_ops() are skipped (and printed).
SPECIAL_UNARY: dict[str, Callable] = {
    "leaky_relu": lambda t: F.leaky_relu(t, 0.1),
    "clamp": lambda t: t.clamp(-1.0, 1.0),
    "pow 2": lambda t: t.pow(2),
    "pow 0.5": lambda t: t.pow(0.5),
    "gelu tanh": lambda t: F.gelu(t, approximate="tanh"),
}
POSITIVE_ONLY = ("log", "log1p", "sqrt", "rsqrt", "reciprocal", "pow 0.5")
UNARY: dict[str, tuple[Callable, bool]] = {
    name: (SPECIAL_UNARY.get(name) or getattr(torch, name, None) or getattr(F, name),
           name in POSITIVE_ONLY)
    for name in ["relu", "relu6", "hardtanh", "leaky_relu", "elu", "neg", "clamp", "abs",
                 "exp", "expm1", "log", "log1p", "sqrt", "rsqrt", "reciprocal", "pow 2",
                 "pow 0.5", "sin", "cos", "erf", "sigmoid", "tanh", "silu", "gelu",
                 "gelu tanh", "hardswish", "hardsigmoid", "softplus", "mish"]}


def build_rows() -> list[Row]:
    rows: list[Row] = []

    def add(*a, **k):
        rows.append(Row(*a, **k))

    # -- elementwise
    for lay, mk in (("NCHW", _randn(*CNN)), ("NHWC", _randn(*CNN, cl=True)),
                    ("tokens", _randn(*TOK))):
        add("elementwise", "relu(x + y)", lay, lambda x, y: torch.relu(x + y),
            _inputs(mk, mk))
        add("elementwise", "x * y + x", lay, lambda x, y: x * y + x, _inputs(mk, mk))
    for name, (u, pos) in UNARY.items():
        for lay, shape in (("NCHW", CNN), ("tokens", TOK)):
            mk = _randn(*shape, pos=pos)
            add("elementwise", name, lay, lambda x, u=u: u(x), _inputs(mk), unary=name)
            add("elementwise", f"{name} + x", lay, lambda x, u=u: u(x) + x, _inputs(mk),
                unary=name)
        if name == "gelu":  # one unary on channels_last: the input-copy cost
            mk = _randn(*CNN, cl=True)
            add("elementwise", "gelu + x", "NHWC", lambda x: F.gelu(x) + x, _inputs(mk),
                unary=name)

    # -- normalization (weights are tensor constants of the traced graph)
    g = torch.Generator().manual_seed(1)
    ln_w, ln_b = torch.rand(768, generator=g) + 0.5, torch.randn(768, generator=g)
    gn_w, gn_b = torch.rand(64, generator=g) + 0.5, torch.randn(64, generator=g)
    bn = [torch.randn(64, generator=g), torch.rand(64, generator=g) + 0.5,
          torch.rand(64, generator=g) + 0.5, torch.randn(64, generator=g)]
    tok, cnn = _inputs(_randn(*TOK)), _inputs(_randn(*CNN))
    add("normalization", "layer_norm(768)", "tokens",
        lambda x: F.layer_norm(x, (768,), ln_w, ln_b), tok)
    add("normalization", "layer_norm(768) + x", "tokens",
        lambda x: F.layer_norm(x, (768,), ln_w, ln_b) + x, tok)
    for groups in (1, 8):
        add("normalization", f"group_norm({groups},64)", "NCHW",
            lambda x, n=groups: F.group_norm(x, n, gn_w, gn_b), cnn)
        add("normalization", f"group_norm({groups},64) + x", "NCHW",
            lambda x, n=groups: F.group_norm(x, n, gn_w, gn_b) + x, cnn)
        add("normalization", f"group_norm({groups},64) * 1.5 + x", "NCHW",
            lambda x, n=groups: F.group_norm(x, n, gn_w, gn_b) * 1.5 + x, cnn)
    for lay, cl in (("NCHW", False), ("NHWC", True)):
        add("normalization", "batch_norm (eval)", lay,
            lambda x: F.batch_norm(x, bn[0], bn[1], bn[2], bn[3], False, 0.1, 1e-5),
            _inputs(_randn(*CNN, cl=cl)),
            note="constant stats: TVM may fold it to a scale + shift")

    # -- softmax (attention scores: heads x tokens x tokens)
    att = _inputs(_randn(12, 197, 197))
    add("softmax", "softmax(-1)", "attention", lambda x: torch.softmax(x, -1), att)
    add("softmax", "softmax(-1) * 2", "attention", lambda x: torch.softmax(x, -1) * 2, att)
    add("softmax", "log_softmax(-1)", "attention", lambda x: torch.log_softmax(x, -1), att)
    add("softmax", "log_softmax(-1) * 2", "attention",
        lambda x: torch.log_softmax(x, -1) * 2, att)

    # -- reductions
    for lay, cl in (("NCHW", False), ("NHWC", True)):
        mk = _inputs(_randn(512, 14, 14, cl=cl))
        add("reduction", "mean(H,W) keepdim", lay, lambda x: x.mean((2, 3), keepdim=True), mk)
        add("reduction", "mean(H,W)", lay, lambda x: x.mean((2, 3)), mk)
    add("reduction", "sum(-1)", "tokens", lambda x: x.sum(-1), tok)
    add("reduction", "mean(-1) keepdim", "tokens", lambda x: x.mean(-1, keepdim=True), tok)
    add("reduction", "max.dim(-1) values", "tokens", lambda x: torch.max(x, -1)[0], tok)

    # -- pooling
    for lay, cl in (("NCHW", False), ("NHWC", True)):
        stem = _inputs(_randn(64, 112, 112, cl=cl))
        add("pooling", "max_pool2d 3x3 s2 p1", lay,
            lambda x: F.max_pool2d(x, 3, 2, 1), stem)
        add("pooling", "avg_pool2d 2x2 s2", lay, lambda x: F.avg_pool2d(x, 2, 2), stem)
        add("pooling", "avg_pool2d 3x3 s1 p1", lay,
            lambda x: F.avg_pool2d(x, 3, 1, 1), _inputs(_randn(*CNN, cl=cl)))
        add("pooling", "adaptive_avg_pool2d(1)", lay,
            lambda x: F.adaptive_avg_pool2d(x, 1), _inputs(_randn(512, 7, 7, cl=cl)))

    # -- layout
    add("layout", "permute(0,2,3,1).contiguous()", "NCHW",
        lambda x: x.permute(0, 2, 3, 1).contiguous(), _inputs(_randn(96, 56, 56)))
    add("layout", "transpose(1,2).contiguous()", "tokens",
        lambda x: x.transpose(1, 2).contiguous(), tok)
    c4 = _randn(64, 28, 28)
    add("layout", "cat([a,b,c,d], 1)", "NCHW", lambda a, b, c, d: torch.cat([a, b, c, d], 1),
        _inputs(c4, c4, c4, c4))
    add("layout", "x[:, 1:] (view)", "tokens", lambda x: x[:, 1:], tok,
        note="a view in PyTorch, a copy in TVM")
    add("layout", "x[:, :, 1:-1, 1:-1].contiguous()", "NCHW",
        lambda x: x[:, :, 1:-1, 1:-1].contiguous(), cnn)
    add("layout", "F.pad(x, (1,1,1,1))", "NCHW", lambda x: F.pad(x, (1, 1, 1, 1)), cnn)

    for i, r in enumerate(rows):
        r.order = i
    return rows


# --------------------------------------------------------------------------- helpers

def schema_key(node) -> str:
    s = node.schema()
    return node.kind() if s == "(no schema)" else s.split("(", 1)[0]


def graph_ops(graph) -> list[str]:
    skip = ("prim::Constant", "prim::ListConstruct", "prim::TupleConstruct",
            "prim::TupleUnpack", "prim::ListUnpack")
    return [schema_key(n) for n in graph.nodes() if n.kind() not in skip]


def shape_str(xs) -> str:
    s = "x".join(map(str, xs[0].shape))
    return s if len(xs) == 1 else f"{len(xs)} x {s}"


TIMING_KEYS = ("n", "median_ms", "p10_ms", "p25_ms", "p75_ms", "p90_ms", "min_ms")


def timing(ts: list[float], inner: int) -> dict:
    """One version's samples (s per call): this benchmark's statistics, in ms."""
    s = summarize(ts)
    return dict({k: s[k] for k in TIMING_KEYS}, inner=inner)


def rel_err(y, ref) -> float | None:
    if isinstance(y, (list, tuple)):
        y = y[0]
    d = float((y.float() - ref.float()).abs().max())
    scale = float(ref.float().abs().max())
    return d / scale if scale > 0 else d


def own_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------- one row

def group_info(tt, graph) -> dict:
    ex = tt._C.explain_graph(graph)
    return {"groups": [{"id": g["id"], "ops": list(g["ops"])} for g in ex["groups"]],
            "outside": [{"op": o["op"], "reason": o["reason"]} for o in ex["outside"]]}


def group_counters(tt, ids: set) -> dict:
    keys = ("calls", "fallback_calls", "compiles", "compile_failures", "input_copies",
            "compile_seconds")
    tot = {k: 0 for k in keys}
    fails = {}
    for g in tt.stats()["groups"]:
        if g["id"] in ids:
            for k in keys:
                tot[k] += g[k]
            for why in g.get("failures", {}).values():
                fails[why[:200]] = fails.get(why[:200], 0) + 1
    tot["failures"] = fails
    return tot


def run_row(row: Row, batch: int, threads: int, args, tt, rng) -> dict:
    xs = row.inputs(batch)
    res = {"id": row.id, "family": row.family, "kernel": row.kernel, "layout": row.layout,
           "shape": shape_str(xs), "batch": batch, "threads": threads, "order": row.order,
           "min_group_size": args.min_group_size, "status": "ok"}
    if row.note:
        res["note"] = row.note
    with torch.no_grad():
        ref = row.fn(*xs)
        if isinstance(ref, (list, tuple)):
            ref = ref[0]

        # TorchScript baseline: torch_tvm off while tracing AND while the profiling
        # executor builds its optimised plan (passes run at the first optimised call).
        tt.disable()
        ts = torch.jit.trace(row.fn, tuple(xs))
        for _ in range(args.warmup):
            y_ts = ts(*xs)
        ts_graph = torch.jit.last_executed_optimized_graph()
        res["ts_groups"] = len(group_info(tt, ts_graph)["groups"])
        res["ts_rel_err"] = rel_err(y_ts, ref)

        # torch_tvm: enabled, fresh trace, run until a call compiles nothing new.
        tt.enable(num_threads=threads, min_group_size=args.min_group_size)
        caught = []
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                tv = torch.jit.trace(row.fn, tuple(xs))
                calls, last = 0, None
                while True:
                    t0 = time.perf_counter()
                    tv(*xs)
                    dt_call = time.perf_counter() - t0
                    calls += 1
                    s = tt.stats()
                    now = s["compiles"] + s["compile_failures"]
                    if calls >= max(args.warmup, 2) and now == last:
                        break
                    last = now
                    if calls >= args.warmup + 5:
                        break
                    if calls == 1:
                        res["first_call_s"] = dt_call
                tv_graph = torch.jit.last_executed_optimized_graph()
        finally:
            tt.disable()  # the plan the executor already optimised keeps its groups
        res["warmup_calls_tvm"] = calls
        info = group_info(tt, tv_graph)
        res["groups"] = len(info["groups"])
        res["group_ops"] = [op for g in info["groups"] for op in g["ops"]]
        res["outside"] = [f"{o['op']}: {o['reason']}" for o in info["outside"]]
        ids = {g["id"] for g in info["groups"]}
        res["rel_err"] = rel_err(tv(*xs), ref)
        keys = ("torch_tvm", "fall back", "fallback")
        warn = [str(w.message) for w in caught if any(k in str(w.message).lower() for k in keys)]
        if warn:
            res["warnings"] = warn[:3]

        # Calibrate: one sample = inner[k] back-to-back calls, >= --sample-ms long.
        fns = {"ts": ts, "tvm": tv}
        inner = {}
        for k, f in fns.items():
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                f(*xs)
                best = min(best, time.perf_counter() - t0)
            inner[k] = max(1, min(args.max_inner, math.ceil(args.sample_ms / 1e3 / best)))

        # Interleaved timing.
        before = group_counters(tt, ids)
        times = {k: [] for k in fns}
        spent = {k: 0.0 for k in fns}
        gap = args.gap_ms / 1e3
        busy0, own0, t_start = cpu_busy_s(), own_cpu_s(), time.perf_counter()
        with gc_paused():
            rounds = 0
            while rounds < args.max_rounds and not (
                    rounds >= args.min_rounds and min(spent.values()) >= args.row_budget):
                order = list(fns)
                rng.shuffle(order)
                for k in order:
                    f = fns[k]
                    t0 = time.perf_counter()
                    for _ in range(inner[k]):
                        f(*xs)
                    dt = time.perf_counter() - t0
                    times[k].append(dt / inner[k])
                    spent[k] += dt
                    if gap:
                        time.sleep(gap)
                rounds += 1
        wall = time.perf_counter() - t_start
        res["background_cores"] = max(0.0, ((cpu_busy_s() - busy0) - (own_cpu_s() - own0))
                                      / wall) if wall > 0 else None
        res["timing_s"] = wall
        after = group_counters(tt, ids)

        # The baseline must still be group-free after all of this.
        ts(*xs)
        res["ts_groups"] = max(res["ts_groups"], len(group_info(
            tt, torch.jit.last_executed_optimized_graph())["groups"]))

    res["ts"] = timing(times["ts"], inner["ts"])
    res["tvm"] = timing(times["tvm"], inner["tvm"])
    res["ratio"] = res["ts"]["median_ms"] / res["tvm"]["median_ms"]
    res["fallback_calls"] = after["fallback_calls"]
    res["fallback_calls_timed"] = after["fallback_calls"] - before["fallback_calls"]
    res["compile_failures"] = after["compile_failures"]
    res["compile_s"] = after["compile_seconds"]
    group_calls = after["calls"] - before["calls"]
    res["input_copies_per_call"] = ((after["input_copies"] - before["input_copies"])
                                    / max(1, group_calls))
    # Every timed torch_tvm call must have gone through its groups (else we timed
    # something else than the TVM plan).
    res["tvm_calls_timed"] = res["tvm"]["n"] * inner["tvm"]
    res["group_calls_timed"] = group_calls
    res["groups_ran"] = group_calls == res["tvm_calls_timed"] * res["groups"]
    if after["failures"]:
        res["failures"] = after["failures"]
    return res


# --------------------------------------------------------------------------- output

def load_results(path: str) -> dict:
    if os.path.exists(path):
        try:
            with open(path) as f:
                data = json.load(f)
            if isinstance(data.get("rows"), dict):
                data.setdefault("runs", [])
                return data
        except (OSError, ValueError):
            os.replace(path, path + ".bad")
            print(f"{path} was unreadable: moved to {path}.bad", flush=True)
    return {"rows": {}, "runs": []}


def row_key(r: dict) -> str:
    return f"{r['id']}|b{r['batch']}|t{r['threads']}"


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def fmt_pair(s: dict | None) -> str:
    if not s:
        return "–"
    return f"{fmt_ms(s['median_ms'])} ({fmt_ms(s['p90_ms'])})"


def fmt_err(v):
    if v is None:
        return "–"
    s = "0" if v == 0 else f"{v:.1e}"
    return f"**{s}**" if v > 1e-3 else s


def gf_cell(r: dict) -> str:
    if r.get("status") != "ok":
        return "–"
    fb = r["fallback_calls"] + r.get("compile_failures", 0)
    s = f"{r['groups']}/{fb}"
    if r["groups"] == 0 or fb:
        s = f"**{s}**"
    if r.get("ts_groups"):
        s += f" (TS plan has {r['ts_groups']} group(s)!)"
    return s


def notes_cell(r: dict) -> str:
    if r.get("status") != "ok":
        return esc(f"{r.get('status')}: {r.get('error', '')[:160]}")
    notes = []
    if r["groups"] == 0:
        notes.append("no TVM group")
    elif r.get("groups_ran") is False:
        notes.append(f"groups ran {r['group_calls_timed']} times in "
                     f"{r['tvm_calls_timed']} timed calls")
    if r.get("outside"):
        outs = sorted({o.split(": ", 1)[0] for o in r["outside"]})
        notes.append("left to PyTorch: " + ", ".join(outs))
    if r.get("failures"):
        notes.append("fallback: " + next(iter(r["failures"]))[:120])
    if r.get("input_copies_per_call"):
        notes.append(f"{r['input_copies_per_call']:.0f} input copy/call")
    if r.get("background_cores") is not None and r["background_cores"] >= 0.2:
        notes.append(f"bg load {r['background_cores']:.1f} cores")
    if r.get("note"):
        notes.append(r["note"])
    return esc("; ".join(notes))


def markdown(data: dict, command_hint: str = "python3.11 benchmarks/kernels.py") -> str:
    """The whole kernels.md: environment of the runs behind the rows, then one table per
    family. Also usable as a section by report.py (it is self-contained markdown)."""
    rows = sorted(data["rows"].values(),
                  key=lambda r: (FAMILIES.index(r["family"]) if r["family"] in FAMILIES
                                 else 99, r.get("order", 0), r["id"], r["batch"],
                                 r["threads"]))
    used = {r.get("run") for r in rows}
    runs = [u for u in data.get("runs", []) if u["started_utc"] in used]
    out = ["# Kernel benchmark: TorchScript vs torch_tvm", "",
           f"Generated by `{command_hint}` (see benchmarks/README.md, \"Kernel "
           "benchmark\"); do not edit by hand.", "",
           "Each row is a small traced function. TorchScript = plain `torch.jit.trace`, "
           "default (profiling) executor, torch_tvm disabled; torch_tvm = the same "
           "function traced again with `torch_tvm.enable()`. Both timed round-robin in "
           "one process, under `torch.no_grad()`. Times in ms: median (p90) per call; "
           "ratio = TorchScript median / torch_tvm median (> 1: torch_tvm faster). "
           "groups/fallbacks = TVM groups in torch_tvm's optimised plan / calls that ran "
           "in PyTorch instead (plus failed compiles). max rel err = max|torch_tvm - "
           "eager| / max|eager|, bold above 1e-3.", "",
           "## Runs behind these rows", "",
           "| started (UTC) | command | configs | rows | CPU | TVM mcpu | torch / tvm | "
           "git | duration |",
           "|---|---|---|---|---|---|---|---|---|"]
    for u in runs:
        n = sum(1 for r in rows if r.get("run") == u["started_utc"])
        pk = u.get("env", {}).get("packages", {})
        git = u.get("env", {}).get("git", "")
        if u.get("env", {}).get("git_dirty_core"):
            git += " (dirty)"
        out.append(f"| {u['started_utc']} | `{esc(u['command'])}` | {', '.join(u['configs'])} "
                   f"| {n} | {u['cpu']} ({u.get('logical_cpus', '?')} cpus) | "
                   f"{u['host_cpu']} | {pk.get('torch', '?')} / "
                   f"{pk.get('apache-tvm', '?')} | {git} | {u.get('total_s', 0) / 60:.1f} min |")
    out += ["", "## Summary", "",
            "Geometric mean of the ratio per family (> 1: torch_tvm faster).", "",
            "| family | batch | threads | rows | geomean ratio | torch_tvm faster | "
            "no TVM group | with fallbacks | errors |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summary(rows):
        out.append(f"| {s['family']} | {s['batch']} | {s['threads']} | {s['rows']} | "
                   f"{fmt_x(s['geomean'])} | {s['faster']} | {s['no_group']} | "
                   f"{s['fallback']} | {s['errors']} |")
    skipped = sorted({s for u in runs for s in u.get("skipped_unary", [])})
    if skipped:
        out += ["", "Unary ops without a converter (no rows): " + ", ".join(skipped) + "."]
    for fam in FAMILIES + sorted({r["family"] for r in rows} - set(FAMILIES)):
        fr = [r for r in rows if r["family"] == fam]
        if not fr:
            continue
        out += ["", f"## {fam}", "",
                "| kernel | shape | batch | threads | TorchScript ms median (p90) | "
                "torch_tvm ms median (p90) | ratio | groups/fallbacks | max rel err | notes |",
                "|---|---|---:|---:|---:|---:|---:|---|---:|---|"]
        for r in fr:
            ok = r.get("status") == "ok"
            ratio = fmt_x(r.get("ratio")) if ok else "–"
            out.append(f"| {r['kernel']} | {r['shape']} {r['layout']} | {r['batch']} | "
                       f"{r['threads']} | {fmt_pair(r.get('ts'))} | {fmt_pair(r.get('tvm'))} "
                       f"| {ratio} | {gf_cell(r)} | {fmt_err(r.get('rel_err'))} | "
                       f"{notes_cell(r)} |")
    return "\n".join(out) + "\n"


def summary(rows: list[dict]) -> list[dict]:
    """Per (family, batch, threads): rows, geometric-mean ratio, rows where torch_tvm is
    faster, rows without a TVM group or with fallbacks, rows that failed."""
    out = {}
    for r in rows:
        k = (r["family"], r["batch"], r["threads"])
        s = out.setdefault(k, {"family": k[0], "batch": k[1], "threads": k[2], "rows": 0,
                               "ratios": [], "faster": 0, "no_group": 0, "fallback": 0,
                               "errors": 0})
        s["rows"] += 1
        if r.get("status") != "ok":
            s["errors"] += 1
            continue
        s["ratios"].append(r["ratio"])
        s["faster"] += r["ratio"] > 1
        s["no_group"] += r["groups"] == 0
        s["fallback"] += (r["fallback_calls"] + r.get("compile_failures", 0)) > 0
    for s in out.values():
        s["geomean"] = geomean(s.pop("ratios"))
    return sorted(out.values(), key=lambda s: (
        FAMILIES.index(s["family"]) if s["family"] in FAMILIES else 99, s["batch"],
        s["threads"]))


def console_line(r: dict) -> str:
    if r.get("status") != "ok":
        return f"  {r['id']:58s} {r['status']}: {r.get('error', '')[:200]}"
    warn = "" if r["groups"] and not r["ts_groups"] and not (
        r["fallback_calls"] + r["compile_failures"]) else "  <-- " + (
        "TS plan has groups" if r["ts_groups"] else
        "no TVM group" if not r["groups"] else "fallback")
    return (f"  {r['id']:58s} TS {fmt_pair(r['ts']):>17s}  tvm {fmt_pair(r['tvm']):>17s}"
            f"  {fmt_x(r['ratio']):>6s}  g/fb {r['groups']}/"
            f"{r['fallback_calls'] + r['compile_failures']}  err {fmt_err(r['rel_err'])}"
            f"  n={r['tvm']['n']}{warn}")


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=csv_list(int), default=[1],
                    help="comma list of batch sizes (the leading dim of every input); "
                    "default 1 (e.g. 1,8)")
    ap.add_argument("--threads", type=csv_list(int), default=[1],
                    help="comma list of thread counts (torch.set_num_threads and "
                    "torch_tvm.enable(num_threads=)); default 1 (e.g. 1,2)")
    ap.add_argument("--filter", action="append", default=[], metavar="SUBSTRING",
                    help="run only rows whose id (family/kernel/layout, see --list) "
                    "contains SUBSTRING (case-insensitive); repeat for several (any "
                    "matches). Not a comma list: kernel names contain commas")
    ap.add_argument("--quick", action="store_true",
                    help="few timed rounds (--min-rounds 3 --max-rounds 5 --row-budget 0.1)")
    ap.add_argument("--warmup", type=int, default=5,
                    help="warm-up calls per version before timing (default 5; torch_tvm "
                    "keeps going until a call compiles nothing new)")
    ap.add_argument("--min-rounds", type=int, default=10,
                    help="timed samples per version at least (default 10)")
    ap.add_argument("--max-rounds", type=int, default=60,
                    help="timed samples per version at most (default 60)")
    ap.add_argument("--row-budget", type=float, default=1.0,
                    help="a row stops once each version has >= --min-rounds samples and "
                    "has spent this many seconds timing (default 1)")
    ap.add_argument("--sample-ms", type=float, default=5.0,
                    help="one sample = enough back-to-back calls (each version its own "
                    "count, at most --max-inner) to take this long (default 5 ms)")
    ap.add_argument("--max-inner", type=int, default=1000)
    ap.add_argument("--gap-ms", type=float, default=1.0, help="idle gap after each sample")
    ap.add_argument("--min-group-size", type=int, default=1,
                    help="torch_tvm.enable(min_group_size=); default 1 so that one op alone "
                    "forms a group (torch_tvm's own default is 2)")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each configuration wait up to this many seconds for "
                    "other processes to use < 0.3 cores (default 0: don't wait)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=DEFAULT_JSON)
    ap.add_argument("--out", default=DEFAULT_MD)
    ap.add_argument("--list", action="store_true", help="print the rows and exit")
    ap.add_argument("--report-only", action="store_true",
                    help="rewrite --out from --json without running anything")
    args = ap.parse_args(argv)
    if args.quick:
        args.min_rounds, args.max_rounds, args.row_budget = 3, 5, 0.1
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.report_only:
        data = load_results(args.json)
        with open(args.out, "w") as f:
            f.write(markdown(data))
        print(f"wrote {args.out} ({len(data['rows'])} rows from {args.json})")
        return
    tt = import_torch_tvm(errors=ImportError)
    supported = set(tt.supported_ops())
    host_cpu, cpu = tt._C.host_cpu(), cpu_model()
    print(f"CPU: {cpu}; TVM mcpu {host_cpu}; {os.cpu_count()} logical cpus; "
          f"torch {torch.__version__}; TorchScript CPU fuser "
          f"{'on' if torch._C._jit_can_fuse_on_cpu() else 'off'}", flush=True)

    rows = build_rows()
    if args.filter:
        flt = [s.lower() for s in args.filter]
        rows = [r for r in rows if any(s in r.id.lower() for s in flt)]
    # Which unary ops have a converter: trace each once (batch 1) and look at its ops.
    skipped, unary_ok = {}, {}
    with torch.no_grad():
        for name, (u, pos) in UNARY.items():
            x = torch.rand(1, 4) + 0.1 if pos else torch.randn(1, 4)
            ops = graph_ops(torch.jit.trace(lambda t, u=u: u(t), x).graph)
            missing = [o for o in ops if o not in supported]
            unary_ok[name] = not missing
            if missing:
                skipped[name] = missing
    if skipped:
        print("skipped unary ops (not in torch_tvm.supported_ops()): " +
              ", ".join(f"{k} ({'/'.join(v)})" for k, v in skipped.items()), flush=True)
    rows = [r for r in rows if r.unary is None or unary_ok[r.unary]]
    configs = [(b, t) for b in args.batch for t in args.threads]
    print(f"{len(rows)} rows x {len(configs)} config(s) "
          f"({', '.join(f'b{b} t{t}' for b, t in configs)})", flush=True)
    if args.list:
        for r in rows:
            print(f"  {r.id:58s} {shape_str(r.inputs(1))}")
        return

    started = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    command = command_line("python3.11 benchmarks/kernels.py", argv)
    env = environment()
    run = {"started_utc": started, "command": command, "cpu": cpu, "host_cpu": host_cpu,
           "logical_cpus": os.cpu_count(), "configs": [f"b{b} t{t}" for b, t in configs],
           "skipped_unary": sorted(skipped), "env": env,
           "settings": {k: getattr(args, k) for k in (
               "warmup", "min_rounds", "max_rounds", "row_budget", "sample_ms", "gap_ms",
               "min_group_size", "seed", "filter", "wait_idle")},
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}
    data = load_results(args.json)
    data["runs"].append(run)
    rng = random.Random(args.seed)
    t_all = time.perf_counter()
    done = 0
    for b, t in configs:
        torch.set_num_threads(t)
        note = idle_note(args.wait_idle)
        print(f"== batch {b}, threads {t} (torch threads {torch.get_num_threads()})" + note,
              flush=True)
        for row in rows:
            t0 = time.perf_counter()
            try:
                r = run_row(row, b, t, args, tt, rng)
            except Exception as e:  # noqa: BLE001 - keep the row, record the reason
                tt.disable()
                r = {"id": row.id, "family": row.family, "kernel": row.kernel,
                     "layout": row.layout, "shape": shape_str(row.inputs(b)), "batch": b,
                     "threads": t, "order": row.order, "status": "error",
                     "error": f"{type(e).__name__}: {e}".replace("\n", " ")[:600],
                     "traceback": traceback.format_exc()[-2000:]}
            r.update(run=started, cpu=cpu, host_cpu=host_cpu, row_s=time.perf_counter() - t0)
            data["rows"][row_key(r)] = r
            run["total_s"] = time.perf_counter() - t_all
            save_json(args.json, data)  # after every row: a crash keeps what ran
            done += 1
            print(console_line(r), flush=True)
    run["total_s"] = time.perf_counter() - t_all
    save_json(args.json, data)
    mine = [r for r in data["rows"].values() if r.get("run") == started]
    print("summary (geomean TorchScript/torch_tvm; faster = rows where torch_tvm wins):",
          flush=True)
    for s in summary(mine):
        print(f"  b{s['batch']} t{s['threads']} {s['family']:14s} {s['rows']:3d} rows  "
              f"geomean {fmt_x(s['geomean']):>7s}  faster {s['faster']:3d}  no group "
              f"{s['no_group']}  fallbacks {s['fallback']}  errors {s['errors']}", flush=True)
    with open(args.out, "w") as f:
        f.write(markdown(data))
    print(f"{done} rows in {run['total_s'] / 60:.1f} min; wrote {args.json} and {args.out} "
          f"({len(data['rows'])} rows in total)", flush=True)


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)  # skip slow teardown of TVM
