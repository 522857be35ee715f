#!/usr/bin/env python3
"""Model-zoo benchmark: torch_tvm vs TorchScript and inductor on ~100 random-weight models.

For every model of the ZOO table in zoo_models.py (torchvision, timm, transformers,
torch.nn), at one batch size and thread count, ONE child process per model:

- builds the model with random weights (nothing is downloaded) and its input;
- eager PyTorch output = the reference;
- TorchScript default: `torch.jit.trace` with torch_tvm disabled, warmed up (5 calls)
  BEFORE torch_tvm is enabled; its optimised graph is checked for tvm::CompilationGroup;
- inductor: `torch.compile(backend="inductor")` with `torch._inductor.config.freezing=True`
  (a failure is recorded, the model goes on);
- torch_tvm: `torch_tvm.enable()`, trace a separate copy, call until nothing new compiles,
  `torch_tvm.disable()` (the optimised plan keeps its TVM groups);
- warm-up, then timed calls round-robin (order shuffled each round) within a per-model
  budget; median, p10/p90, IQR; first-call (compile) time; max relative error vs eager
  (max|y - ref| / max|ref|); torch_tvm coverage (groups, ops left to PyTorch and their
  kinds, fallbacks); the CPU (torch_tvm._C.host_cpu(), /proc/cpuinfo model name).

The parent keeps every result in benchmarks/zoo_results.json, keyed by model + batch +
threads, written after each model: a rerun skips the models already measured (resumable;
--force re-measures all, --only NAMES re-measures those). A crash or hang of one model
(per-model timeout) becomes an error row. benchmarks/zoo.md is rendered from the cache.

    python benchmarks/zoo.py                          # the whole zoo (resumable)
    python benchmarks/zoo.py --models resnet18,bert   # a subset (cached rows skipped)
    python benchmarks/zoo.py --only resnet18          # re-measure these
    python benchmarks/zoo.py --report-only            # re-render zoo.md from the cache
    python benchmarks/zoo.py --list                   # the model table
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Never pick up the source tree's torch_tvm/ (it has no built _C): use the installed one.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from bench_common import (command_line, cpu_model, gc_paused, geomean, idle_note,  # noqa: E402
                          import_torch_tvm, save_json, summarize)
from report import esc, fmt, fmt_ms, fmt_x, median  # noqa: E402 - benchmarks/report.py
from run import children_cpu_s, cpu_busy_s, csv_list  # noqa: E402 - benchmarks/run.py
from zoo_models import ZOO, ZOO_BY_NAME, Entry, input_desc, make_input  # noqa: E402, F401

DEFAULT_JSON = os.path.join(HERE, "zoo_results.json")
DEFAULT_MD = os.path.join(HERE, "zoo.md")
DEFAULT_LOGS = os.path.join(HERE, "logs", "zoo")
TIMED_PEERS = ("ts_default", "inductor", "torch_tvm")
REL_ERR_LIMIT = 1e-4


def config_key(name: str, batch: int, threads: int) -> str:
    return f"{name}|b{batch}|t{threads}"


# --------------------------------------------------------------------------------------
# Child: one model, all peers, in this process.
# --------------------------------------------------------------------------------------

def _first_tensor(y):
    import torch

    while isinstance(y, (list, tuple)) and y:
        y = y[0]
    if isinstance(y, dict):
        y = next(iter(y.values()))
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"output is {type(y).__name__}, not a tensor")
    return y


def rel_err(y, ref) -> tuple[float | None, str | None]:
    """(max|y - ref| / max|ref|, None) or (None, why it cannot be compared)."""
    try:
        y = _first_tensor(y)
    except TypeError as e:
        return None, str(e)
    if tuple(y.shape) != tuple(ref.shape):
        return None, f"shape {tuple(y.shape)} vs eager {tuple(ref.shape)}"
    diff = float((y.detach().double() - ref.double()).abs().max()) if y.numel() else 0.0
    scale = float(ref.double().abs().max()) if ref.numel() else 0.0
    if math.isnan(diff):
        return None, "NaN in output"
    return (diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))), None


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for p in ("torch", "torchvision", "apache-tvm", "torch_tvm", "timm", "transformers"):
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def _count_groups(graph) -> int:
    return str(graph).count("tvm::CompilationGroup") if graph is not None else 0


def run_child(name: str, batch: int, threads: int, a, out_path: str) -> None:
    """Measure one model; write the (partial, then final) result to out_path."""
    warnings.filterwarnings("ignore")
    import torch

    import peers as P

    e = ZOO_BY_NAME[name]
    res = dict(model=name, family=e.family, source=e.source, batch=batch, threads=threads,
               input=input_desc(e, batch), note=e.note, phase="start", peers={})

    def save():
        save_json(out_path, res)

    def phase(p):
        res["phase"] = p
        log(f"[{name}] {p}")
        save()

    t_start = time.perf_counter()
    torch.set_num_threads(threads)
    torch_tvm = import_torch_tvm(log)
    torch_tvm.disable()
    res["cpu"] = dict(host_cpu=str(torch_tvm._C.host_cpu()), model_name=cpu_model("?"))
    res["versions"] = _versions()
    res["torch_threads"] = torch.get_num_threads()

    phase("build")
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    model = e.build().eval()
    x = make_input(e, batch, a.seed)
    res["build_s"] = time.perf_counter() - t0
    res["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6

    phase("eager")
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = _first_tensor(model(x)).detach().clone()
        res["eager_first_s"] = time.perf_counter() - t0
    res["output"] = "x".join(map(str, ref.shape)) + " " + str(ref.dtype).replace("torch.", "")
    res["ref_max_abs"] = float(ref.double().abs().max()) if ref.numel() else 0.0

    # What the peers of peers.py read: ctx.model, .x, .ref, .threads, .args.
    ctx = types.SimpleNamespace(model=model, x=x, ref=ref, threads=threads,
                                args=types.SimpleNamespace(inductor_cache=a.inductor_cache))

    class TorchTVM(P.TorchTVM):
        """peers.TorchTVM, keeping the optimised graph for the op-kind report."""

        def _describe(self, tt, before, graph):
            self.graph = graph
            super()._describe(tt, before, graph)

    active = []

    def prepare(key, peer, extra=None):
        r = res["peers"].setdefault(key, {"status": "ok"})
        phase(f"prepare {key}")
        t0 = time.perf_counter()
        try:
            with torch.no_grad():
                y = peer.prepare()
                r["first_call_s"] = time.perf_counter() - t0
                if extra:
                    y = extra(peer, r, y)
            r["rel_err"], why = rel_err(y, ref)
            if why:
                r["rel_err_note"] = why
            active.append(peer)
        except Exception as ex:  # noqa: BLE001 - the row records the reason
            r["status"] = "error"
            r["error"] = P.short_error(ex, 400)
            r["prep_s"] = time.perf_counter() - t0
            log(f"  {key} failed: {r['error']}")
            peer.close()
        r["notes"] = peer.notes
        if "first_call_s" in r:
            log(f"  {key}: first call {r['first_call_s']:.2f} s, rel err {r.get('rel_err')}")
        save()

    # TorchScript default: traced and warmed up with torch_tvm disabled, before enable().
    def ts_extra(peer, r, y):
        for _ in range(2):  # 3 calls in prepare + 2: the plan is optimised and cached
            y = peer.fn(x)
        n = _count_groups(torch.jit.last_executed_optimized_graph())
        r["tvm_groups_in_graph"] = n
        if n:
            raise P.PeerError(f"baseline contaminated: {n} tvm::CompilationGroup in the "
                              "TorchScript default graph")
        return y

    torch_tvm.disable()
    ts = P.TSDefault(ctx)
    prepare("ts_default", ts, ts_extra)
    if not a.no_inductor:
        prepare("inductor", P.Inductor(ctx))
    else:
        res["peers"]["inductor"] = {"status": "skipped", "error": "--no-inductor"}

    def tvm_extra(peer, r, y):
        info = dict(peer.tvm_info)
        ex = torch_tvm._C.explain_graph(peer.graph) if peer.graph is not None else None
        if ex is not None:
            info["groups_in_graph"] = len(ex["groups"])
            info["group_sizes"] = [len(g["ops"]) for g in ex["groups"]]
            reasons = {}
            for o in ex["outside"]:
                reasons.setdefault(o["op"], str(o.get("reason", ""))[:160])
            info["outside_reasons"] = reasons
        r["torch_tvm"] = info
        return y

    prepare("torch_tvm", TorchTVM(ctx), tvm_extra)
    if torch_tvm.is_enabled():
        torch_tvm.disable()
    res["setup_s"] = time.perf_counter() - t_start

    # Warm-up (round-robin): up to a.warmup calls per peer, at most a.warmup_budget s each.
    def drop(peer, pool, ex):
        r = res["peers"][peer.key]
        r["status"] = "error"
        r["error"] = "during timing: " + P.short_error(ex, 300)
        log(f"  {peer.key} failed while timing: {r['error']}")
        pool.remove(peer)
        if peer in active:
            active.remove(peer)

    phase("warmup")
    gap = a.gap_ms / 1e3
    with torch.no_grad():
        for _ in range(a.warmup):
            for peer in list(active):
                if peer.last_prep_call_s >= a.warmup_budget:
                    continue  # slow peers already ended their prep with steady calls
                try:
                    peer.call()
                except Exception as ex:  # noqa: BLE001
                    drop(peer, active, ex)
                time.sleep(gap)

    # Timed, round-robin, order shuffled every round. Stop when every peer has
    # >= min_iters samples and the round-robin has used `budget` seconds, or at
    # max_iters, or (whatever the counts) at `cap` seconds.
    phase("timing")
    s0 = torch_tvm.stats()
    times = {p.key: [] for p in active}
    rng = random.Random(a.seed)
    t_t = time.perf_counter()
    running = list(active)
    with gc_paused(), torch.no_grad():
        while running:
            el = time.perf_counter() - t_t
            if el >= a.cap or (el >= a.budget and
                               all(len(times[p.key]) >= a.min_iters for p in running)):
                break
            order = list(running)
            rng.shuffle(order)
            for peer in order:
                if len(times[peer.key]) >= a.max_iters:
                    running.remove(peer)
                    continue
                try:
                    times[peer.key].append(peer.call())
                except Exception as ex:  # noqa: BLE001
                    drop(peer, running, ex)
                time.sleep(gap)
    res["timing_s"] = time.perf_counter() - t_t
    s1 = torch_tvm.stats()
    for peer in active:
        res["peers"][peer.key].update(summarize(times[peer.key]))
    if "torch_tvm" in res["peers"] and "torch_tvm" in res["peers"]["torch_tvm"]:
        info = res["peers"]["torch_tvm"]["torch_tvm"]
        info["timing_fallback_calls"] = s1["fallback_calls"] - s0["fallback_calls"]
        info["timing_compiles"] = s1["compiles"] - s0["compiles"]
    # The baseline again, after everything: still no TVM group in its plan?
    if ts in active:
        with torch.no_grad():
            ts.fn(x)
        n = _count_groups(torch.jit.last_executed_optimized_graph())
        res["peers"]["ts_default"]["tvm_groups_after_timing"] = n
    res["phase"] = "done"
    res["wall_s"] = time.perf_counter() - t_start
    save()
    for peer in active:
        peer.close()


def check_build(names: list[str], batch: int, seed: int) -> None:
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(1)
    failed = []
    for n in names:
        e = ZOO_BY_NAME[n]
        t0 = time.perf_counter()
        try:
            torch.manual_seed(seed)
            m = e.build().eval()
            params = sum(p.numel() for p in m.parameters()) / 1e6
            t1 = time.perf_counter()
            with torch.no_grad():
                y = _first_tensor(m(make_input(e, batch, seed)))
            print(f"ok   {n:32s} {params:7.1f} M params  build {t1 - t0:5.1f} s  eager "
                  f"{time.perf_counter() - t1:5.2f} s  out {tuple(y.shape)}", flush=True)
        except Exception as ex:  # noqa: BLE001
            failed.append(n)
            print(f"FAIL {n:32s} {type(ex).__name__}: {str(ex)[:300]}", flush=True)
    print(f"{len(names) - len(failed)} ok, {len(failed)} failed: {', '.join(failed)}")


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------------------
# Parent: cache, subprocesses, report.
# --------------------------------------------------------------------------------------

def load_cache(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        data.setdefault("results", {})
        return data
    return {"results": {}}


def run_model(e: Entry, a) -> dict:
    """One model in a fresh child process with a timeout; always returns a row."""
    tmp = tempfile.mkdtemp(prefix="tvmzoo_")
    out_path = os.path.join(tmp, "out.json")
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("HF_HUB_OFFLINE", "1")  # random weights only: never reach a hub
    env["PYTHONWARNINGS"] = "ignore"
    if a.inductor_cache == "cold":
        env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor_cache")
    if a.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = a.omp_wait_policy.upper()
    os.makedirs(a.log_dir, exist_ok=True)
    log_path = os.path.join(a.log_dir, f"{e.name}_b{a.batch}_t{a.threads}.log")
    cmd = [sys.executable, os.path.abspath(__file__), "--child", e.name, "--out", out_path,
           "--batch", str(a.batch), "--threads", str(a.threads)]
    for k in ("budget", "cap", "min_iters", "max_iters", "warmup", "warmup_budget",
              "gap_ms", "seed", "inductor_cache"):
        cmd += [f"--{k.replace('_', '-')}", str(getattr(a, k))]
    if a.no_inductor:
        cmd.append("--no-inductor")
    t0 = time.perf_counter()
    busy0, ru0 = cpu_busy_s(), children_cpu_s()
    fatal = None
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, cwd=HERE, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=a.model_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            fatal = f"timeout: killed after {a.model_timeout:g} s"
        except KeyboardInterrupt:
            os.killpg(proc.pid, 9)
            proc.wait()
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    wall = time.perf_counter() - t0
    foreign = (cpu_busy_s() - busy0) - (children_cpu_s() - ru0)
    res = None
    if os.path.exists(out_path):
        with open(out_path) as f:
            res = json.load(f)
    if res is None:
        res = dict(model=e.name, family=e.family, source=e.source, batch=a.batch,
                   threads=a.threads, input=input_desc(e, a.batch), phase="start", peers={})
    if fatal is None and res.get("phase") != "done":
        fatal = (f"crashed (exit code {proc.returncode})" if proc.returncode else
                 "child ended without a result")
    if fatal:
        res["fatal"] = f"{fatal} in phase '{res.get('phase')}'; " + _log_tail(log_path)
    res["process_wall_s"] = wall
    res["background_cores"] = max(0.0, foreign / wall) if wall > 0 else None
    res["log"] = os.path.relpath(log_path, ROOT)
    res["measured_utc"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    res["settings"] = {k: getattr(a, k) for k in (
        "budget", "cap", "min_iters", "max_iters", "warmup", "warmup_budget", "gap_ms",
        "inductor_cache", "model_timeout", "omp_wait_policy")}
    shutil.rmtree(tmp, ignore_errors=True)
    return res


def _log_tail(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
    except OSError:
        return ""
    lines = [ln for ln in lines if not ln.startswith("[")]
    return "log: " + " / ".join(lines[-2:])[:300]


# ---- formatting ----------------------------------------------------------------------

def _speedup(r, base):
    t, b = median(r, "torch_tvm"), median(r, base)
    return b / t if (t and b) else None


def _lat_cell(r, key) -> str:
    p = r.get("peers", {}).get(key)
    if p is None:
        return "–"
    if median(r, key):
        return f"{fmt_ms(p['median_ms'])} ({fmt_ms(p['p10_ms'])}–{fmt_ms(p['p90_ms'])})"
    if p.get("status") == "ok":
        return "not timed"
    return "**error**" if p.get("status") == "error" else esc(p.get("status", "–"))


def _outside_cell(info: dict | None) -> str:
    if not info or info.get("outside") is None:
        return "–"
    out = info["outside"]
    n = sum(out.values())
    if not n:
        return "0"
    top = sorted(out.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    more = " …" if len(out) > 3 else ""
    return f"{n}: " + ", ".join(f"{k.replace('aten::', '')} {v}" for k, v in top) + more


def _fallback_cell(info: dict | None) -> str:
    if not info:
        return "–"
    fails = info.get("compile_failures", 0)
    calls = info.get("fallback_calls", 0) + info.get("timing_fallback_calls", 0)
    if not fails and not calls:
        return "0"
    return f"{fails} spec(s), {calls} call(s)"


def _rel_cell(r: dict) -> str:
    p = r.get("peers", {}).get("torch_tvm")
    if not p or p.get("status") != "ok":
        return "–"
    v = p.get("rel_err")
    if v is None:
        return esc(p.get("rel_err_note", "–"))
    s = f"**{v:.1e}**" if v > REL_ERR_LIMIT else f"{v:.1e}"
    ts = r["peers"].get("ts_default") or {}
    if v > REL_ERR_LIMIT and ts.get("status") == "ok" and (ts.get("rel_err") or 0) > 0:
        s += f" (TorchScript {ts['rel_err']:.1e})"  # the model itself is not reproducible
    return s


def _host_cpu(r: dict) -> str:
    return (r.get("cpu") or {}).get("host_cpu", "?")


def select_rows(results: dict, batch: int, threads: int) -> list[dict]:
    """Cached rows of one configuration, in ZOO order (unknown names last)."""
    order = {e.name: i for i, e in enumerate(ZOO)}
    rows = [r for r in results.values()
            if r.get("batch") == batch and r.get("threads") == threads]
    return sorted(rows, key=lambda r: (order.get(r["model"], len(order)), r["model"]))


def markdown_table(results: dict, batch: int = 1, threads: int = 2, level: int = 2) -> str:
    """The zoo section (table + summary), from zoo_results.json's "results" dict, for one
    (batch, threads) configuration. `level` is the heading level, so that
    benchmarks/report.py can embed it: `zoo.markdown_table(json.load(f)["results"], 1, 2,
    level=2)`."""
    h = "#" * level
    rows = select_rows(results, batch, threads)
    out = []
    w = out.append
    w(f"{h} Model zoo: batch {batch}, {threads} thread(s)\n")
    if not rows:
        w("No model measured for this configuration yet.\n")
        return "\n".join(out) + "\n"
    cpus = sorted({f"{r['cpu']['model_name']} (torch_tvm host_cpu {r['cpu']['host_cpu']})"
                   for r in rows if r.get("cpu")})
    if cpus:
        w("CPU: " + "; ".join(cpus) + "\n")
    # Rows measured on different CPUs are not comparable with each other (an AVX-512 Zen 4/5
    # and an AVX2 Zen 3 give different ratios for the same code): name each row's CPU.
    mixed = len({_host_cpu(r) for r in rows}) > 1
    if mixed:
        w("**These rows come from more than one CPU** (column cpu): compare a row's peers "
          "with each other, not rows of different CPUs.\n")
    vers = next((r["versions"] for r in rows if r.get("versions")), None)
    if vers:
        w("Packages: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v) + "\n")
    n_all = sum(1 for e in ZOO)
    w(f"{len(rows)} of {n_all} zoo models measured. Latency cells: median ms (p10–p90). "
      "Speedups are median/median (> 1: torch_tvm is faster). ⚠ marks models where "
      "torch_tvm is slower than TorchScript. first call = trace/compile + the calls until "
      "the first steady output. groups = TVM groups in torch_tvm's optimised graph; ops "
      "outside = ops left to PyTorch (count: top kinds); fallbacks = input specs whose "
      "compile failed and group calls that ran in PyTorch instead; max rel err = "
      "max|torch_tvm - eager| / max|eager| (bold > 1e-4; TorchScript's own error is "
      "added when it is not 0); bg load = CPU cores used by "
      "other processes while the model ran (above ~0.1 the row is disturbed on a 2-core "
      "machine).\n")
    w("| model | family / source | input | TorchScript ms | inductor ms | torch_tvm ms | "
      "vs TS | vs inductor | torch_tvm first call s | inductor first call s | groups | "
      "ops outside | fallbacks | max rel err | bg load |" + (" cpu |" if mixed else ""))
    w("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|"
      + ("---|" if mixed else ""))
    for r in rows:
        tvm = r.get("peers", {}).get("torch_tvm", {})
        info = tvm.get("torch_tvm") if tvm.get("status") == "ok" else None
        sp_ts, sp_ind = _speedup(r, "ts_default"), _speedup(r, "inductor")
        slow = sp_ts is not None and sp_ts < 1.0
        name = ("⚠ " if slow else "") + r["model"]
        if r.get("fatal"):
            name += " (fatal)"
        ind = r.get("peers", {}).get("inductor", {})
        w(f"| {name} | {esc(r.get('family', ''))} / {r.get('source', '')} | "
          f"{esc(r.get('input', ''))} | {_lat_cell(r, 'ts_default')} | "
          f"{_lat_cell(r, 'inductor')} | {_lat_cell(r, 'torch_tvm')} | "
          f"{('**' + fmt_x(sp_ts) + '**') if slow else fmt_x(sp_ts)} | {fmt_x(sp_ind)} | "
          f"{fmt(tvm.get('first_call_s'), '.1f') if info else '–'} | "
          f"{fmt(ind.get('first_call_s'), '.1f') if ind.get('status') == 'ok' else '–'} | "
          f"{info.get('groups', '–') if info else '–'} | {_outside_cell(info)} | "
          f"{_fallback_cell(info)} | {_rel_cell(r)} | "
          f"{fmt(r.get('background_cores'), '.2f')} |"
          + (f" {_host_cpu(r)} |" if mixed else ""))
    w("")
    g_ts = [s for r in rows if (s := _speedup(r, "ts_default"))]
    g_ind = [s for r in rows if (s := _speedup(r, "inductor"))]
    w(f"{h}# Summary\n")
    gm = geomean(g_ts)
    w(f"- geometric mean speedup of torch_tvm vs TorchScript: {fmt_x(gm)} over "
      f"{len(g_ts)} model(s)")
    gm = geomean(g_ind)
    w(f"- geometric mean speedup of torch_tvm vs inductor: {fmt_x(gm)} over "
      f"{len(g_ind)} model(s)")
    slow = [(r["model"] + (f" on {_host_cpu(r)}" if mixed else ""), s)
            for r in rows if (s := _speedup(r, "ts_default")) and s < 1.0]
    w(f"- slower than TorchScript ({len(slow)}): "
      + (", ".join(f"{m} ({fmt_x(s)})" for m, s in sorted(slow, key=lambda t: t[1]))
         or "none"))
    if mixed:
        for cpu in sorted({_host_cpu(r) for r in rows}):
            own = [s for r in rows if _host_cpu(r) == cpu and (s := _speedup(r, "ts_default"))]
            w(f"- rows measured on {cpu}: {len(own)}, geometric mean vs TorchScript "
              f"{fmt_x(geomean(own))}")
    bad = []
    for r in rows:
        p = r.get("peers", {}).get("torch_tvm", {})
        if p.get("status") == "ok" and (p.get("rel_err") is None or
                                        p["rel_err"] > REL_ERR_LIMIT):
            bad.append(f"{r['model']} ({fmt(p.get('rel_err'), '.1e')})"
                       if p.get("rel_err") is not None
                       else f"{r['model']} ({esc(p.get('rel_err_note', '?'))})")
    w(f"- torch_tvm max rel err > 1e-4 ({len(bad)}): " + (", ".join(bad) or "none"))
    nogroup = [r["model"] for r in rows
               if r.get("peers", {}).get("torch_tvm", {}).get("status") == "ok"
               and not r["peers"]["torch_tvm"].get("torch_tvm", {}).get("groups")]
    if nogroup:
        w(f"- no TVM group formed (plain TorchScript): {', '.join(nogroup)}")
    busy = [r["model"] for r in rows if (r.get("background_cores") or 0) > 0.3]
    if busy:
        w(f"- measured with > 0.3 cores of background load (numbers disturbed): "
          f"{', '.join(busy)}")
    total = sum(r.get("process_wall_s", 0) for r in rows)
    w(f"- wall time of these rows: {total / 60:.0f} min "
      f"({total / len(rows):.0f} s per model on average)")
    w("")
    fails = []
    for r in rows:
        if r.get("fatal"):
            fails.append(f"- {r['model']}: **{esc(r['fatal'])}**")
        for k in ("ts_default", "inductor", "torch_tvm"):
            p = r.get("peers", {}).get(k)
            if p and p.get("status") == "error":
                fails.append(f"- {r['model']} / {k}: {esc(p.get('error', ''))}")
        info = (r.get("peers", {}).get("torch_tvm") or {}).get("torch_tvm") or {}
        for why, n in (info.get("failures") or {}).items():
            fails.append(f"- {r['model']} / torch_tvm fallback ({n} spec(s)): {esc(why)}")
    if fails:
        w(f"{h}# Failures\n")
        out.extend(fails)
        w("")
    return "\n".join(out) + "\n"


def render(data: dict, batch: int, threads: int, command: str | None = None,
           json_name: str = "benchmarks/zoo_results.json") -> str:
    head = ["# Model zoo: torch_tvm vs TorchScript and inductor\n",
            f"Generated by `python benchmarks/zoo.py` from `{json_name}`"
            + (f" (last command: `{command}`)" if command else "")
            + ". Do not edit by hand. Each model ran in its own process: eager reference, "
            "TorchScript default (trace, warmed up before torch_tvm was enabled), inductor "
            "(freezing) and torch_tvm, then timed round-robin within a per-model budget; "
            "fp32, random weights. Method: [README.md](README.md#model-zoo-zoopy).\n"]
    return "\n".join(head) + "\n" + markdown_table(data.get("results", {}), batch, threads)


def console_line(r: dict) -> str:
    if r.get("fatal"):
        return f"    FATAL: {r['fatal'][:300]}"
    parts = []
    for k in TIMED_PEERS:
        p = r.get("peers", {}).get(k, {})
        if median(r, k):
            parts.append(f"{k} {fmt_ms(p['median_ms'])} ms (n={p['n']})")
        else:
            parts.append(f"{k} {p.get('status', '-')}: {str(p.get('error', ''))[:100]}")
    tvm = r.get("peers", {}).get("torch_tvm", {})
    info = tvm.get("torch_tvm") or {}
    s = "    " + "; ".join(parts)
    s += (f"\n    vs TS {fmt_x(_speedup(r, 'ts_default'))}, vs inductor "
          f"{fmt_x(_speedup(r, 'inductor'))}; torch_tvm first call "
          f"{fmt(tvm.get('first_call_s'), '.1f')} s, groups {info.get('groups', '–')}, "
          f"outside {_outside_cell(info)}, rel err {fmt(tvm.get('rel_err'), '.1e')}")
    return s


# --------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=csv_list(), default=None,
                    help="comma list of zoo names (default: all); cached rows are skipped")
    ap.add_argument("--only", type=csv_list(), default=None,
                    help="comma list of zoo names to (re-)measure even if cached")
    ap.add_argument("--force", action="store_true", help="re-measure cached models too")
    ap.add_argument("--retry-errors", action="store_true",
                    help="re-measure cached rows that ended fatally (timeout / crash)")
    ap.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    ap.add_argument("--budget", type=float, default=20.0,
                    help="seconds of round-robin timing per model once every peer has "
                    "--min-iters samples (default 20)")
    ap.add_argument("--cap", type=float, default=60.0,
                    help="hard cap on a model's timing phase in seconds (default 60)")
    ap.add_argument("--min-iters", type=int, default=5)
    ap.add_argument("--max-iters", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=3, help="warm-up calls per peer")
    ap.add_argument("--warmup-budget", type=float, default=3.0,
                    help="a peer whose last preparation call took longer than this many "
                    "seconds skips warm-up (default 3)")
    ap.add_argument("--gap-ms", type=float, default=5.0,
                    help="idle gap between two timed calls (default 5 ms)")
    ap.add_argument("--model-timeout", type=float, default=600.0,
                    help="kill a model's process after this many seconds (default 600)")
    ap.add_argument("--inductor-cache", choices=["cold", "warm"], default="cold",
                    help="cold (default): fresh TORCHINDUCTOR_CACHE_DIR per model, so the "
                    "inductor first call is a real compile")
    ap.add_argument("--no-inductor", action="store_true", help="skip the inductor peer")
    ap.add_argument("--omp-wait-policy", choices=["inherit", "passive", "active"],
                    default="inherit")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each model wait up to this many seconds for other "
                    "processes to use < 0.3 cores (default 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=DEFAULT_JSON)
    ap.add_argument("--md", default=DEFAULT_MD)
    ap.add_argument("--log-dir", default=DEFAULT_LOGS)
    ap.add_argument("--report-only", action="store_true",
                    help="only re-render the markdown from the cache")
    ap.add_argument("--list", action="store_true", help="print the model table and exit")
    ap.add_argument("--check-build", action="store_true",
                    help="only build each selected model and run it once in eager mode "
                    "(1 thread, in this process): checks constructors and input shapes")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    for names in (a.models or []), (a.only or []):
        bad = [n for n in names if n not in ZOO_BY_NAME]
        if bad:
            ap.error(f"unknown model(s) {bad}; see --list")
    return a


def main(argv=None):
    a = parse_args(argv)
    if a.child:
        run_child(a.child, a.batch, a.threads, a, a.out)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # skip the slow teardown of TVM / dynamo
    if a.list:
        for e in ZOO:
            print(f"{e.name:32s} {e.source:12s} {input_desc(e, a.batch):28s} {e.family}")
        print(f"{len(ZOO)} models")
        return
    if a.check_build:
        check_build(a.only or a.models or [e.name for e in ZOO], a.batch, a.seed)
        return
    data = load_cache(a.json)
    command = command_line("python benchmarks/zoo.py", argv)
    if not a.report_only:
        names = a.only or a.models or [e.name for e in ZOO]
        todo, cached = [], []
        for n in names:
            r = data["results"].get(config_key(n, a.batch, a.threads))
            if r is None or a.force or a.only or (a.retry_errors and r.get("fatal")):
                todo.append(n)
            else:
                cached.append(n)
        print(f"{len(todo)} model(s) to measure, {len(cached)} cached in "
              f"{os.path.relpath(a.json)} (skipped; --force / --only to re-measure)",
              flush=True)
        t_all = time.perf_counter()
        for i, n in enumerate(todo, 1):
            note = idle_note(a.wait_idle)
            print(f"[{i}/{len(todo)}] {n} (batch {a.batch}, {a.threads} threads) ..." + note,
                  flush=True)
            r = run_model(ZOO_BY_NAME[n], a)
            data = load_cache(a.json)  # re-read: keep rows another run may have written
            data["results"][config_key(n, a.batch, a.threads)] = r
            data["meta"] = dict(last_command=command,
                                updated_utc=r["measured_utc"])
            save_json(a.json, data)
            print(console_line(r), flush=True)
            print(f"    ({r['process_wall_s']:.0f} s, background load "
                  f"{r['background_cores']:.2f} cores; total so far "
                  f"{time.perf_counter() - t_all:.0f} s)", flush=True)
    jpath = os.path.abspath(a.json)
    md = render(data, a.batch, a.threads, data.get("meta", {}).get("last_command"),
                os.path.relpath(jpath, ROOT) if jpath.startswith(ROOT + os.sep) else jpath)
    with open(a.md, "w") as f:
        f.write(md)
    print(f"wrote {os.path.relpath(a.md)} ({len(select_rows(data['results'], a.batch, a.threads))}"
          f" rows) and {os.path.relpath(a.json)}", flush=True)


if __name__ == "__main__":
    main()
