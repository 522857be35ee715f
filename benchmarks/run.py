#!/usr/bin/env python3
"""CPU inference benchmark: torch_tvm vs eager / TorchScript / inductor / onnxruntime /
OpenVINO / TVM relax_dynamo.

Each (model, batch, threads) configuration runs in its own fresh process
(benchmarks/worker.py) in which every peer is prepared and then timed round-robin
(peer A one iteration, peer B one iteration, ...). Results go to BENCHMARKS.md at the
repository root, benchmarks/speedups.png and benchmarks/results.json.

    python benchmarks/run.py            # full suite (see README.md for the budget)
    python benchmarks/run.py --quick    # resnet18, batch 1, threads 1 and 2
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]

import models  # noqa: E402
import peers as P  # noqa: E402
import report  # noqa: E402


def csv_list(conv=str):
    def parse(s):
        return [conv(v.strip()) for v in s.split(",") if v.strip()]
    return parse


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=csv_list(), default=list(models.ALL_MODELS),
                    help="comma list from: " + ",".join(models.ALL_MODELS) +
                    " (default: all)")
    ap.add_argument("--batch", type=csv_list(int), default=[1, 8],
                    help="batch sizes for the CNNs (BERT always runs batch 1, seq 128); "
                    "default 1,8")
    ap.add_argument("--threads", type=csv_list(int), default=[1, 2],
                    help="intra-op thread counts (torch.set_num_threads, "
                    "torch_tvm.enable(num_threads=), ORT/OpenVINO/TVM threads); default 1,2")
    ap.add_argument("--peers", type=csv_list(), default=list(P.PEER_ORDER),
                    help="comma list from: " + ",".join(P.PEER_ORDER) + " (default: all)")
    ap.add_argument("--iters", type=int, default=50,
                    help="max timed iterations per peer (default 50)")
    ap.add_argument("--min-iters", type=int, default=5,
                    help="a peer keeps going past --peer-budget until it has this many "
                    "samples (default 5), unless --peer-cap stops it")
    ap.add_argument("--peer-budget", type=float, default=4.0,
                    help="seconds of timed runs after which a peer with >= --min-iters "
                    "samples stops (default 4)")
    ap.add_argument("--peer-cap", type=float, default=30.0,
                    help="hard cap: a peer stops (even below --min-iters, but with >= 1 "
                    "sample) when its next sample would exceed this many seconds in "
                    "total (default 30)")
    ap.add_argument("--warmup", type=int, default=3,
                    help="warm-up calls per peer after its first call(s) (default 3)")
    ap.add_argument("--warmup-budget", type=float, default=3.0,
                    help="stop warming a peer up after this many seconds (default 3)")
    ap.add_argument("--gap-ms", type=float, default=5.0,
                    help="idle gap between two timed calls so spinning worker threads "
                    "of the previous runtime go to sleep (default 5 ms)")
    ap.add_argument("--relax-dynamo-timeout", type=float, default=120.0,
                    help="time box (s) for relax_dynamo compile + first run (default 120)")
    ap.add_argument("--config-timeout", type=float, default=1800.0,
                    help="kill a configuration's worker process after this many seconds")
    ap.add_argument("--inductor-cache", choices=["cold", "warm"], default="cold",
                    help="cold: fresh TORCHINDUCTOR_CACHE_DIR per configuration, so the "
                    "inductor first-call time is a real compile (default); warm: use the "
                    "user's default cache")
    ap.add_argument("--overhead-rounds", type=int, default=40,
                    help="rounds for the tiny-call overhead test (default 40)")
    ap.add_argument("--overhead-inner", type=int, default=200,
                    help="calls per round for the tiny-call overhead test (default 200)")
    ap.add_argument("--no-overhead", action="store_true",
                    help="skip the tiny torch_tvm call overhead test")
    ap.add_argument("--wait-idle", type=float, default=0.0,
                    help="before each configuration wait up to this many seconds for the "
                    "machine to be idle (other processes using < 0.3 cores); default 0")
    ap.add_argument("--ort-spin", action="store_true",
                    help="keep onnxruntime's intra-op thread spinning on (its default); by "
                    "default the suite turns it off because the spinning threads slow "
                    "down the next peer in the round-robin")
    ap.add_argument("--omp-wait-policy", choices=["inherit", "passive", "active"],
                    default="inherit",
                    help="OMP_WAIT_POLICY for the worker processes; inherit (default) "
                    "leaves the environment alone. passive stops idle OpenMP threads from "
                    "spinning, which matters a lot when other processes share the cores")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true",
                    help="fast subset: resnet18, batch 1, threads 1,2")
    ap.add_argument("--out", default=os.path.join(ROOT, "BENCHMARKS.md"),
                    help="markdown report (default: BENCHMARKS.md at the repo root)")
    ap.add_argument("--chart", default=os.path.join(HERE, "speedups.png"))
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--log-dir", default=os.path.join(HERE, "logs"),
                    help="per-configuration worker logs (stderr)")
    args = ap.parse_args(argv)
    if args.quick:
        args.models, args.batch, args.threads = ["resnet18"], [1], [1, 2]
    bad = [m for m in args.models if m not in models.ALL_MODELS]
    if bad:
        ap.error(f"unknown model(s) {bad}")
    bad = [p for p in args.peers if p not in P.PEER_ORDER]
    if bad:
        ap.error(f"unknown peer(s) {bad}")
    return args


def worker_args(args) -> dict:
    keys = ["peers", "iters", "min_iters", "peer_budget", "peer_cap", "warmup",
            "warmup_budget", "gap_ms", "relax_dynamo_timeout", "inductor_cache",
            "overhead_rounds", "overhead_inner", "seed", "ort_spin"]
    return {k: getattr(args, k) for k in keys}


def cpu_busy_s() -> float:
    """Non-idle CPU seconds of the whole machine since boot (from /proc/stat)."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError):
        return 0.0


def children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def wait_idle(max_wait: float) -> float:
    """Wait until other processes use < 0.3 cores over 2 s; return the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        b0 = cpu_busy_s()
        s0 = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(2.0)
        s1 = resource.getrusage(resource.RUSAGE_SELF)
        own = (s1.ru_utime + s1.ru_stime) - (s0.ru_utime + s0.ru_stime)
        if (cpu_busy_s() - b0 - own) / 2.0 < 0.3:
            break
    return time.perf_counter() - t0


def run_one(spec: dict, args, tag: str) -> dict:
    tmp = tempfile.mkdtemp(prefix="tvmbench_")
    spec_path = os.path.join(tmp, "spec.json")
    out_path = os.path.join(tmp, "out.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONWARNINGS"] = "ignore"
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    if args.inductor_cache == "cold":
        env["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(tmp, "inductor_cache")
    os.makedirs(args.log_dir, exist_ok=True)
    log_path = os.path.join(args.log_dir, f"{tag}.log")
    t0 = time.perf_counter()
    busy0, ru0 = cpu_busy_s(), children_cpu_s()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "worker.py"), spec_path,
                                 out_path], stdout=log, stderr=log, cwd=HERE, env=env,
                                start_new_session=True)
        try:
            proc.wait(timeout=args.config_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the worker and its relax_dynamo child
            proc.wait()
        except KeyboardInterrupt:  # the worker is in its own session: stop it too
            os.killpg(proc.pid, 9)
            proc.wait()
            raise
    wall = time.perf_counter() - t0
    foreign = (cpu_busy_s() - busy0) - (children_cpu_s() - ru0)
    if os.path.exists(out_path):
        with open(out_path) as f:
            res = json.load(f)
    else:
        why = (f"worker exceeded --config-timeout {args.config_timeout:g} s"
               if proc.returncode == -9 else f"worker exited with code {proc.returncode}")
        res = dict(spec, fatal=f"{why}; see {os.path.relpath(log_path, ROOT)}", peers={})
        res.pop("args", None)
    res["process_wall_s"] = wall
    # CPU used by processes other than this benchmark, in cores, averaged over the run.
    res["background_cores"] = max(0.0, foreign / wall) if wall > 0 else None
    shutil.rmtree(tmp, ignore_errors=True)
    return res


def main(argv=None):
    args = parse_args(argv)
    command = "python benchmarks/run.py" + (" " + shlex.join(sys.argv[1:])
                                            if argv is None and sys.argv[1:] else "")
    configs = []
    for m in args.models:
        for b in models.batches_for(m, args.batch):
            for t in args.threads:
                configs.append(dict(kind="model", model=m, batch=b, threads=t))
    if not args.no_overhead and "torch_tvm" in args.peers:
        for t in args.threads:
            configs.append(dict(kind="overhead", threads=t))
    started = dt.datetime.now(dt.timezone.utc)
    t_all = time.perf_counter()
    results = []
    waited_total = 0.0
    for i, c in enumerate(configs, 1):
        spec = dict(c, args=worker_args(args))
        tag = (f"{c['model']}_b{c['batch']}_t{c['threads']}" if c["kind"] == "model"
               else f"overhead_t{c['threads']}")
        waited = wait_idle(args.wait_idle) if args.wait_idle > 0 else 0.0
        waited_total += waited
        print(f"[{i}/{len(configs)}] {tag} ..." +
              (f" (waited {waited:.0f} s for an idle machine)" if waited >= 2.5 else ""),
              flush=True)
        res = run_one(spec, args, tag)
        results.append(res)
        print(report.console_summary(res), flush=True)
        print(f"    ({res['process_wall_s']:.0f} s, background load "
              f"{res['background_cores']:.2f} cores; total so far "
              f"{time.perf_counter() - t_all:.0f} s)", flush=True)
    total = time.perf_counter() - t_all
    env = report.environment()
    meta = dict(command=command, started_utc=started.strftime("%Y-%m-%d %H:%M UTC"),
                total_s=total, settings=worker_args(args), env=env,
                wait_idle=args.wait_idle, waited_s=waited_total,
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "unset")
                if args.omp_wait_policy == "inherit" else args.omp_wait_policy.upper())
    with open(args.json, "w") as f:
        json.dump(dict(meta=meta, results=results), f, indent=1)
    chart_ok = report.chart(results, args.chart)
    md = report.markdown(results, meta, os.path.relpath(args.chart, os.path.dirname(
        os.path.abspath(args.out))) if chart_ok else None)
    with open(args.out, "w") as f:
        f.write(md)
    print(f"wrote {args.out}, {args.chart if chart_ok else '(no chart)'}, {args.json}; "
          f"total {total / 60:.1f} min", flush=True)


if __name__ == "__main__":
    main()
