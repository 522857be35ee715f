"""Markdown report, console summary, environment capture and chart."""
from __future__ import annotations

import datetime as dt
import glob
import json
import os
import platform
import subprocess

import peers as P

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

PACKAGES = ["torch", "torchvision", "apache-tvm", "apache-tvm-ffi", "torch_tvm", "numpy",
            "onnx", "onnxruntime", "onnxscript", "openvino", "transformers", "matplotlib"]
SHORT = {"eager": "eager", "ts_default": "TS", "ts_freeze": "TS freeze+ofi",
         "inductor": "inductor", "onnxruntime": "ORT", "openvino": "OpenVINO",
         "relax_dynamo": "relax_dynamo", "torch_tvm_untuned": "torch_tvm untuned",
         "torch_tvm": "torch_tvm"}


def cfg_name(r: dict) -> str:
    return f"{r['model']} b{r['batch']} t{r['threads']}"


def median(r: dict, key: str):
    p = r.get("peers", {}).get(key)
    if p and p.get("status") == "ok" and p.get("median_ms"):
        return p["median_ms"]
    return None


def speedups(r: dict, key: str):
    m = median(r, key)
    ts, ind = median(r, "ts_default"), median(r, "inductor")
    return (ts / m if (m and ts) else None, ind / m if (m and ind) else None)


def fmt(v, spec=".2f", none="–"):
    return none if v is None else format(v, spec)


def fmt_ms(v):
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 1 else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_x(v):
    if v is None:
        return "–"
    return f"{v:.2f}x" if v >= 0.1 else f"{v:.3f}x"


def status_cell(p: dict | None) -> str:
    if p is None:
        return "not run"
    if p.get("status") == "ok":
        return "ok"
    return f"{p.get('status', 'error')}: {esc(p.get('error', ''))}"


def esc(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def console_summary(r: dict) -> str:
    if r.get("fatal"):
        return f"    FATAL: {r['fatal']}"
    if r.get("kind") == "overhead":
        pe = r["peers"]
        s = "    " + ", ".join(f"{k} {v['median_us']:.1f} us" for k, v in pe.items())
        if "torch_tvm_error" in r:
            s += f"; torch_tvm: {r['torch_tvm_error']}"
        return s
    lines = []
    for k in P.PEER_ORDER:
        p = r["peers"].get(k)
        if not p:
            continue
        if p["status"] == "ok" and "median_ms" in p:
            sp_ts, sp_ind = speedups(r, k)
            lines.append(f"    {k:13s} median {fmt_ms(p['median_ms']):>8s} ms  p90 "
                         f"{fmt_ms(p['p90_ms']):>8s}  n={p['n']:<3d} vsTS {fmt_x(sp_ts):>7s}"
                         f"  first {p['first_call_s']:.2f} s  diff "
                         f"{fmt(p.get('max_abs_diff'), '.1e')}")
        else:
            lines.append(f"    {k:13s} {p['status']}: {p.get('error', '')[:150]}")
    return "\n".join(lines)


def _cmd(args):
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        return ""


def environment() -> dict:
    from importlib import metadata

    env = {}
    cpu, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not cpu:
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    env["cpu"] = cpu or platform.processor()
    env["cpu_flags"] = " ".join(sorted(f for f in flags if f.startswith(("avx512f", "avx512_bf16",
                                "avx512_vnni", "amx", "avx2", "fma"))))
    env["logical_cpus"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        env["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    env["os"] = platform.platform()
    env["python"] = platform.python_version()
    vers = {}
    for p in PACKAGES:
        try:
            vers[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            vers[p] = "not installed"
    env["packages"] = vers
    env["git"] = _cmd(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", ROOT, "status", "--porcelain", "--", "csrc", "torch_tvm"])
    env["git_dirty_core"] = bool(dirty)
    try:
        import importlib.util

        spec = importlib.util.find_spec("torch_tvm")
        env["torch_tvm_path"] = os.path.dirname(spec.origin) if spec else "not found"
    except Exception:  # noqa: BLE001
        pass
    try:
        import torch

        info = torch.__config__.parallel_info().splitlines()
        env["torch_parallel"] = "; ".join(ln.strip() for ln in info
                                          if "OpenMP" in ln or "backend" in ln.lower())[:200]
    except Exception:  # noqa: BLE001
        pass
    return env


COLORS = {"eager": "#7f7f7f", "ts_default": "#000000", "ts_freeze": "#8c564b",
          "inductor": "#1f77b4", "onnxruntime": "#ff7f0e", "openvino": "#9467bd",
          "relax_dynamo": "#2ca02c", "torch_tvm_untuned": "#e377c2", "torch_tvm": "#d62728"}


def chart(results: list[dict], path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except Exception:  # noqa: BLE001
        return False
    rows = [r for r in results if r.get("kind") == "model" and not r.get("fatal")]
    if not rows:
        return False
    keys = [k for k in P.PEER_ORDER if k != "ts_default"]
    keys = [k for k in keys if any(k in r.get("peers", {}) for r in rows)]
    fig, ax = plt.subplots(figsize=(max(8, 1.2 * len(rows) + 3), 5.5))
    width = 0.8 / max(1, len(keys))
    vals = [sp for r in rows for k in keys if (sp := speedups(r, k)[0]) is not None]
    lo = min(vals + [0.5]) / 1.6
    hi = max(vals + [2.0]) * 1.8
    for j, k in enumerate(keys):
        for i, r in enumerate(rows):
            x = i - 0.4 + width * (j + 0.5)
            sp = speedups(r, k)[0]
            if sp is not None:
                ax.bar(x, sp, width=width, color=COLORS[k], bottom=0)
            elif k in r.get("peers", {}):
                ax.text(x, lo * 1.05, "x", ha="center", va="bottom", color=COLORS[k],
                        fontsize=9, fontweight="bold")
    ax.axhline(1.0, color="black", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)
             if lo <= t <= hi]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([cfg_name(r) for r in rows], rotation=30, ha="right")
    ax.set_ylabel("speedup vs TorchScript trace (log scale)")
    ax.set_title("CPU inference: speedup vs TorchScript default (median latency ratio; "
                 "higher is better; x = failed)", fontsize=10)
    ax.legend(handles=[Patch(color=COLORS[k], label=SHORT[k]) for k in keys], ncol=4,
              fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _maybe(v, formatter):
    return None if v is None else formatter(v)


def _summary_table(w, rows, keys, value, background=False):
    """One row per configuration, one cell per peer: value(row, key, peer) as
    text, or None for the peer's status ("error: ...", "timeout"); "–" where
    the peer did not run. With background=True a last column gives the
    background load and fatal configurations get a row of "fatal"."""
    extra = " background load |" if background else ""
    w("| config | " + " | ".join(SHORT[k] for k in keys) + " |" + extra)
    w("|---|" + "---:|" * len(keys) + ("---:|" if background else ""))
    for r in rows:
        bg = f" {fmt(r.get('background_cores'), '.2f')} cores |" if background else ""
        if r.get("fatal"):
            if background:
                w(f"| {cfg_name(r)} | " + " | ".join(["fatal"] * len(keys)) + " |" + bg)
            continue
        cells = []
        for k in keys:
            p = r["peers"].get(k)
            text = None if p is None else value(r, k, p)
            cells.append("–" if p is None else
                         text if text is not None else p.get("status", "error"))
        w(f"| {cfg_name(r)} | " + " | ".join(cells) + " |" + bg)
    w("")


def _conv_choices(w, rows):
    """Per 3x3 stride-1 conv shape: each candidate's time and the winner (torch_tvm's
    measured choice, torch_tvm/_winograd.py). Other convs (strided, 1x1, depthwise)
    have one candidate, oneDNN."""
    lines = []
    for r in rows:
        info = ((r.get("peers") or {}).get("torch_tvm") or {}).get("torch_tvm") or {}
        for c in info.get("conv_choices") or []:
            if c.get("threads") != r["threads"]:
                continue
            n, h, wd, ci, k = c["shape"]
            t = c.get("times_us", {})
            cell = lambda name: f"{t[name]:.0f}" if name in t else "-"  # noqa: E731
            lines.append(f"| {cfg_name(r)} | {n}x{h}x{wd}x{ci} -> {k} | {cell('onednn')} | "
                         f"{cell('F2')} | {cell('F4')} | {c['kernel']} |")
    if not lines:
        return
    w("## Kernel choice per 3x3 stride-1 conv shape (torch_tvm default)\n")
    w("Measured at the first compile of each shape (conv + bias, best of 5 rounds of 3 calls, "
      "interleaved); Winograd must be 5% faster than oneDNN to be chosen. Convs that are "
      "strided, 1x1 or depthwise have one candidate (oneDNN) and are not listed; MobileNetV2 "
      "and BERT have no eligible layer.\n")
    w("| config | NHWC input -> out channels | oneDNN (us) | Winograd F(2,3) (us) | "
      "Winograd F(4,3) (us) | runs |")
    w("|---|---|---:|---:|---:|---|")
    for line in lines:
        w(line)
    w("")


def _linear_choices(w, rows):
    """Per linear shape: each kernel's time and the one that runs (torch_tvm's
    measured choice, torch_tvm/_linear_choice.py)."""
    lines, seen = [], set()
    kernels = ("onednn", "sgemm", "aten")
    for r in rows:
        info = ((r.get("peers") or {}).get("torch_tvm") or {}).get("torch_tvm") or {}
        for c in info.get("linear_choices") or []:
            key = (cfg_name(r), tuple(c["shape"]), c.get("post"))
            if c.get("threads") != r["threads"] or key in seen:
                continue
            seen.add(key)
            m, k, n = c["shape"]
            t = c.get("times_us", {})
            cells = " | ".join(f"{t[kn]:.0f}" if kn in t else "-" for kn in kernels)
            post = "" if c.get("post") in (None, "none") else f" + {c['post']}"
            lines.append(f"| {cfg_name(r)} | {m} x {k} -> {n}{post} | {cells} | {c['kernel']} "
                         f"({c.get('source', '')}) |")
    if not lines:
        return
    w("## Kernel choice per linear shape (torch_tvm default)\n")
    w("Measured at the first compile of each (rows, in, out, post-op): each kernel cycles "
      "through copies of the real weight (cold, as in a forward pass), best of 5 rounds of 3 "
      "calls, interleaved; the fastest runs (`torch_tvm/_linear_choice.py`). oneDNN = the "
      "system oneDNN 2.6 inner product built once; sgemm = torch_tvm's packed GEMM (AVX2/FMA, "
      "or AVX-512 where the CPU has it; `csrc/kernels/gemm/`); aten = PyTorch's `mkldnn::_linear_pointwise`.\n")
    w("| config | rows x in -> out | oneDNN (us) | sgemm (us) | aten (us) | runs |")
    w("|---|---|---:|---:|---:|---|")
    for line in lines:
        w(line)
    w("")


def _tvm_conv_choices(w, rows):
    """Per conv with a tuned TVM candidate (the tuning database's measured choice,
    torch_tvm/_tvm_convs.py): oneDNN's time, the tuned TVM kernel's, the winner."""
    lines, dbs = [], []
    for r in rows:
        info = ((r.get("peers") or {}).get("torch_tvm") or {}).get("torch_tvm") or {}
        tuning = info.get("tuning") or {}
        names = [("shipped " + "/".join(d.split(os.sep)[-2:])) if "tuning_dbs" in d else d
                 for d in tuning.get("databases", [])]
        dbs.append(f"| {cfg_name(r)} | {', '.join(names) or 'none for this CPU'} | "
                   f"{tuning.get('tuned_kernels_applied', 0)} | {tuning.get('choices_from_database', 0)} | "
                   f"{tuning.get('tvm_convs', 0)} | {tuning.get('tvm_conv_misses', 0)} |")
        for c in info.get("tvm_conv_choices") or []:
            if c.get("threads") != r["threads"]:
                continue
            n, h, wd, ci, k = c["shape"]
            t = c.get("times_us", {})
            kh, kw = c["kernel_size"]
            chain = "+".join(c.get("epilogue", [])) or "-"
            lines.append(f"| {cfg_name(r)} | {kh}x{kw} s{c['stride'][0]} g{c['groups']} "
                         f"{n}x{h}x{wd}x{ci} -> {k} | {chain} | {t.get('onednn', 0):.0f} | "
                         f"{t.get('tvm', 0):.0f} | {c['kernel']} |")
    if dbs:
        w("## Tuning databases applied (torch_tvm tuned)\n")
        w("Counts are per benchmark process (both torch_tvm peers share it). The databases "
          "are built by `benchmarks/tune_shipped.py`; see the tuning times below.\n")
        w("| config | databases | tuned TVM kernels applied | kernel choices from the "
          "database | convs on tuned TVM kernels | TVM conv builds redone on oneDNN |")
        w("|---|---|---:|---:|---:|---:|")
        for line in dbs:
            w(line)
        w("")
    times = []
    for path in sorted(glob.glob(os.path.join(ROOT, "torch_tvm", "tuning_dbs", "*", "times.json"))):
        cpu = os.path.basename(os.path.dirname(path))
        for model, t in sorted(json.load(open(path)).items()):
            times.append(f"| {cpu} | {model} | {t['seconds'] / 60:.1f} | {t['runs']} | "
                         f"{t['trials']} | {t.get('tasks', '?')} | {t.get('tuned_kernels', '?')} | "
                         f"{t.get('choices', '?')} |")
    if times:
        w("## Tuning time of the shipped databases\n")
        w("`benchmarks/tune_shipped.py` (torch_tvm.tune at batch 1, 2 threads), summed over "
          "its runs (a run continues the previous one).\n")
        w("| CPU | model | tuning time (min) | runs | MetaSchedule trials | tasks | "
          "tuned kernels kept | kernel choices |")
        w("|---|---|---:|---:|---:|---:|---:|---:|")
        for line in times:
            w(line)
        w("")
    if lines:
        w("## Kernel choice per conv with a tuned TVM candidate (torch_tvm tuned)\n")
        w("Measured by `torch_tvm.tune` on the conv and the elementwise chain after it "
          "(oneDNN runs the conv and bias, TVM the chain; the TVM kernel fuses all of it), "
          "best of 7 rounds of 5 calls, interleaved. TVM must be 5% faster. Only depthwise "
          "convs get a TVM candidate by default (`tvm_convs=\"depthwise\"`); the 1x1 and "
          "dense convs run on oneDNN (and 3x3 stride-1 dense convs may run as Winograd, "
          "table above). One row per distinct conv and chain.\n")
        w("| config | conv (NHWC input -> out channels) | fused chain | oneDNN (us) | "
          "tuned TVM (us) | chosen |")
        w("|---|---|---|---:|---:|---|")
        for line in lines:
            w(line)
        w("")


def markdown(results: list[dict], meta: dict, chart_rel: str | None) -> str:
    env, st = meta["env"], meta["settings"]
    rows = [r for r in results if r.get("kind") == "model"]
    over = [r for r in results if r.get("kind") == "overhead"]
    keys = [k for k in P.PEER_ORDER if k in st["peers"]]
    out = []
    w = out.append
    w("# Benchmarks: torch_tvm vs other CPU inference paths\n")
    w(f"Generated by `{meta['command']}` on {meta['started_utc']} "
      f"(total {meta['total_s'] / 60:.1f} min"
      + (f", of which {meta['waited_s'] / 60:.1f} min waiting for an idle machine"
         if meta.get("waited_s", 0) >= 1 else "")
      + "). Do not edit by hand: rerun the command.\n")
    w("Each model configuration ran in one fresh process; inside it all peers were "
      "prepared, warmed up, then timed round-robin (one iteration of each peer per round, "
      "order shuffled every round). "
      "Latencies are per forward call, fp32, random weights. Speedups are median/median "
      "ratios (>1 = faster than the reference). See "
      "[benchmarks/README.md](benchmarks/README.md) for the method.\n")
    w("## Environment\n")
    w(f"- CPU: {env.get('cpu')} ({env.get('logical_cpus')} logical CPUs, "
      f"{env.get('memory_gib', '?')} GiB RAM); flags: {env.get('cpu_flags')}")
    w(f"- OS: {env.get('os')}; Python {env.get('python')}")
    w(f"- torch parallel backend: {env.get('torch_parallel', '?')}")
    w("- packages: " + ", ".join(f"{k}=={v}" for k, v in env["packages"].items()))
    w(f"- torch_tvm: the installed package ({env.get('torch_tvm_path', '?')}); repo HEAD at "
      f"run time {env.get('git') or '?'}"
      + (" (csrc/ or torch_tvm/ had uncommitted changes)" if env.get("git_dirty_core")
         else "") + "; the installed build may lag the repo")
    w(f"- settings: max {st['iters']} timed iters/peer; stop after {st['peer_budget']:g} s "
      f"once >= {st['min_iters']} iters; hard cap {st['peer_cap']:g} s/peer (>= 1 iter); "
      f"warm-up {st['warmup']} calls (<= {st['warmup_budget']:g} s); "
      f"{st['gap_ms']:g} ms idle gap between calls; relax_dynamo box "
      f"{st['relax_dynamo_timeout']:g} s; inductor cache {st['inductor_cache']}; "
      f"wait for idle machine up to {meta.get('wait_idle', 0):g} s per configuration; "
      f"OMP_WAIT_POLICY {meta.get('omp_wait_policy', 'unset')}\n")

    if rows:
        w("## Summary: median latency (ms)\n")
        _summary_table(w, rows, keys, lambda r, k, p: _maybe(median(r, k), fmt_ms),
                       background=True)
        w("background load = CPU used by processes other than this benchmark during the "
          "configuration, averaged over its run (from /proc/stat minus the benchmark's own "
          "CPU time). On this 2-core machine anything above ~0.1 cores means the numbers "
          "of that row are disturbed.\n")
        w("## Summary: speedup vs TorchScript default (trace)\n")
        _summary_table(w, rows, keys, lambda r, k, p: _maybe(speedups(r, k)[0], fmt_x))
        if chart_rel:
            w(f"![speedup vs TorchScript default]({chart_rel})\n")
        w("## Summary: first-call time (s)\n")
        w("Preparation (trace / export / compile) + the call(s) until the first steady "
          "output; see the per-configuration notes below.\n")
        _summary_table(w, rows, keys, lambda r, k, p: _maybe(
            p.get("first_call_s") if p.get("status") == "ok" else None, lambda v: fmt(v, ".1f")))

    _conv_choices(w, rows)
    _linear_choices(w, rows)
    _tvm_conv_choices(w, rows)

    if over:
        w("## torch_tvm fixed overhead of a tiny group call\n")
        w("`torch.jit.trace(lambda x: torch.relu(x + 1))` on a 1x8 fp32 tensor: one "
          "TVM group of two ops. Median over rounds of back-to-back calls (per call).\n")
        w("| threads | eager (us) | TorchScript (us) | torch_tvm (us) | torch_tvm - eager (us)"
          " | torch_tvm - TorchScript (us) | notes |")
        w("|---:|---:|---:|---:|---:|---:|---|")
        for r in over:
            if r.get("fatal"):
                w(f"| {r['threads']} | – | – | – | – | – | fatal: {esc(r['fatal'])} |")
                continue
            pe = r["peers"]

            def us(k):
                return fmt(pe[k]["median_us"], ".2f") if k in pe else "–"
            note = r.get("torch_tvm_error", "")
            if "torch_tvm_groups" in r:
                note = (f"{r['torch_tvm_groups']} group(s), max abs diff "
                        f"{fmt(r.get('max_abs_diff'), '.1e')}; "
                        f"{pe['eager']['rounds']} rounds x {pe['eager']['calls_per_round']}"
                        " calls")
                if r.get("torch_tvm_groups") == 0:
                    note = "no TVM group formed: this is plain TorchScript; " + note
            note += f"; background load {fmt(r.get('background_cores'), '.2f')} cores"
            w(f"| {r['threads']} | {us('eager')} | {us('ts_default')} | {us('torch_tvm')} | "
              f"{fmt(r.get('overhead_vs_eager_us'), '.2f')} | "
              f"{fmt(r.get('overhead_vs_ts_us'), '.2f')} | {esc(note)} |")
        w("")

    if rows:
        w("## Per-configuration results\n")
        w("first call = preparation (trace / export / compile) plus the call(s) until the "
          "first steady output: TorchScript peers include 3 calls (the profiling executor "
          "optimises on the 2nd), torch_tvm includes every call until one compiles nothing "
          "new. max abs diff is against eager PyTorch's output; rel diff = max abs diff / "
          "max |eager output|. n = timed iterations.\n")
        for r in rows:
            w(f"### {cfg_name(r)}\n")
            if r.get("desc"):
                w(f"{r['desc']}; {r['threads']} thread(s); process wall "
                  f"{r.get('process_wall_s', 0):.0f} s (setup {r.get('setup_s', 0):.0f} s, "
                  f"timing {r.get('timing_s', 0):.0f} s); background load "
                  f"{fmt(r.get('background_cores'), '.2f')} cores.\n")
            if r.get("fatal"):
                w(f"**Configuration failed:** {esc(r['fatal'])}\n")
                continue
            w("| peer | status | median ms | p90 ms | n | vs TS | vs inductor | "
              "first call s | max abs diff | rel diff | notes |")
            w("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
            for k in keys:
                p = r["peers"].get(k)
                if p is None:
                    continue
                sp_ts, sp_ind = speedups(r, k)
                ok = p.get("status") == "ok" and "median_ms" in p
                w(f"| {P.PEER_LABELS[k]} | {status_cell(p) if not ok else 'ok'} | "
                  f"{fmt_ms(p.get('median_ms'))} | {fmt_ms(p.get('p90_ms'))} | "
                  f"{p.get('n', '–')} | {fmt_x(sp_ts)} | {fmt_x(sp_ind)} | "
                  f"{fmt(p.get('first_call_s'), '.2f')} | "
                  f"{fmt(p.get('max_abs_diff'), '.1e')} | {fmt(p.get('rel_diff'), '.1e')} | "
                  f"{esc('; '.join(p.get('notes', [])))} |")
            w("")
    w("## Notes\n")
    w("- TorchScript peers are traced and warmed up before `torch_tvm.enable()` and "
      "torch_tvm is disabled again right after its own first calls (its optimised plan "
      "keeps its TVM groups), so torch_tvm's pass never rewrites the other peers' plans.")
    w("- relax_dynamo runs in a child process so that its compile can be time-boxed and "
      "killed; its timed calls are still interleaved with the other peers (the parent "
      "waits while it runs) and its latency is measured inside the child.")
    w("- OpenVINO uses `aot_autograd=True` (the default path fails with this torch), "
      "`INFERENCE_PRECISION_HINT=f32` (it would use bf16 on AVX512-BF16 CPUs) and "
      "`INFERENCE_NUM_THREADS` = threads; a silent fallback to inductor is reported as an "
      "error.")
    w("- onnxruntime: CPUExecutionProvider, intra-op threads = threads, inter-op 1, "
      "ORT_ENABLE_ALL, intra-op spinning "
      + ("on (--ort-spin)" if st.get("ort_spin") else
         "off (ORT's spinning idle threads slowed the next peer in the round-robin by up "
         "to 1.6x; ORT itself loses < 2%)")
      + "; the time includes the numpy <-> torch conversion of input/output.")
    w("- Peers with a slow steady state are stopped by the per-peer time cap, so their "
      "`n` can be small (even 1); the median of a small `n` is less reliable.")
    out += extra_sections()
    return "\n".join(out) + "\n"


def _demoted(md: str) -> list[str]:
    """Markdown with every heading one level deeper (to sit under a ## section)."""
    return [("#" + line) if line.startswith("#") else line for line in md.splitlines()]


def extra_sections() -> list[str]:
    """The kernel benchmark and model zoo sections, from their own result files
    (benchmarks/kernels_results.json, benchmarks/zoo_results.json) when present."""
    import json  # noqa: PLC0415
    out = []
    kjson = os.path.join(HERE, "kernels_results.json")
    if os.path.exists(kjson):
        import kernels  # noqa: PLC0415
        out += ["", "## Kernel benchmark (benchmarks/kernels.py)", ""]
        out += _demoted(kernels.markdown(kernels.load_results(kjson)))[1:]
    zjson = os.path.join(HERE, "zoo_results.json")
    if os.path.exists(zjson):
        import zoo  # noqa: PLC0415
        with open(zjson) as f:
            results = json.load(f)["results"]
        out += ["", "## Model zoo (benchmarks/zoo.py)", ""]
        out += zoo.markdown_table(results, 1, 2, level=3).splitlines()
    return out


def main():
    """Rewrite BENCHMARKS.md from results.json (and the kernel/zoo result files)
    without running anything."""
    import json  # noqa: PLC0415
    with open(os.path.join(HERE, "results.json")) as f:
        data = json.load(f)
    chart_rel = "benchmarks/speedups.png" if os.path.exists(
        os.path.join(HERE, "speedups.png")) else None
    with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
        f.write(markdown(data["results"], data["meta"], chart_rel))


if __name__ == "__main__":
    main()
