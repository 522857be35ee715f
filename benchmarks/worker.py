"""One model configuration (model, batch, threads) in ONE process, all peers
interleaved. Started by run.py as `python worker.py SPEC.json OUT.json`; writes a
JSON result even when peers fail (each failure becomes a status + reason).
"""
from __future__ import annotations

import gc
import json
import os
import random
import sys
import time
import traceback
import types
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Never pick up the source tree's torch_tvm/ (it has no built _C): use the installed one.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != ROOT]

warnings.filterwarnings("ignore")

import torch  # noqa: E402

import models  # noqa: E402
import peers as P  # noqa: E402


def summarize(ts: list[float]) -> dict:
    import statistics

    if not ts:
        return {}
    s = sorted(ts)
    n = len(s)

    def pct(q):
        if n == 1:
            return s[0]
        k = (n - 1) * q
        lo = int(k)
        hi = min(lo + 1, n - 1)
        return s[lo] + (s[hi] - s[lo]) * (k - lo)

    return {"n": n, "median_ms": statistics.median(s) * 1e3, "p90_ms": pct(0.9) * 1e3,
            "min_ms": s[0] * 1e3, "mean_ms": sum(s) / n * 1e3}


class Ctx(types.SimpleNamespace):
    pass


def run_model_config(spec: dict) -> dict:
    args = types.SimpleNamespace(**spec["args"])
    threads = spec["threads"]
    torch.set_num_threads(threads)
    res = {"kind": "model", "model": spec["model"], "batch": spec["batch"],
           "threads": threads, "peers": {}, "torch_threads": torch.get_num_threads()}
    model, x, desc = models.build(spec["model"], spec["batch"], seed=args.seed)
    res["desc"] = desc
    with torch.no_grad():
        ref = model(x)
    res["ref_max_abs"] = float(ref.float().abs().max())
    ctx = Ctx(model=model, x=x, ref=ref, threads=threads, args=args)

    active = []
    t_setup = time.perf_counter()
    with torch.no_grad():
        for key in [k for k in P.PEER_ORDER if k in args.peers]:
            r = {"label": P.PEER_LABELS[key], "status": "ok"}
            res["peers"][key] = r
            peer = P.PEER_CLASSES[key](ctx)
            log(f"  prepare {key} ...")
            t0 = time.perf_counter()
            try:
                y = peer.prepare()
                r["first_call_s"] = time.perf_counter() - t0
                if key == "relax_dynamo":
                    r["first_call_s"] = peer.first_call_s
                    r["max_abs_diff"] = peer.diff
                else:
                    r["max_abs_diff"] = P.max_abs_diff(y, ref)
                r["rel_diff"] = P.rel_diff(r["max_abs_diff"], ref)
                active.append(peer)
            except BaseException as e:  # noqa: BLE001 - keep the row, record the reason
                if isinstance(e, KeyboardInterrupt):
                    raise
                r["status"] = "timeout" if str(e).startswith("timeout") else "error"
                r["error"] = P.short_error(e, 400)
                r["prep_s"] = time.perf_counter() - t0
                log("    " + r["error"][:200])
                log(traceback.format_exc(limit=4)[-1500:])
                peer.close()
            r["notes"] = peer.notes
            if key == "torch_tvm" and getattr(peer, "tvm_info", None):
                r["torch_tvm"] = peer.tvm_info
            if "first_call_s" in r:
                log(f"    first call {r['first_call_s']:.2f} s, max|diff| "
                    f"{r.get('max_abs_diff')}")
    res["setup_s"] = time.perf_counter() - t_setup

    gap = args.gap_ms / 1e3
    times = {p.key: [] for p in active}
    spent = {p.key: 0.0 for p in active}

    def fail(peer, e):
        r = res["peers"][peer.key]
        r["status"] = "error"
        r["error"] = "during timing: " + P.short_error(e, 300)
        active.remove(peer)
        peer.close()

    def call_or_drop(peer, pool):
        """One call of `peer`; on failure record it, drop it from `pool`, return None."""
        try:
            return peer.call()
        except BaseException as e:  # noqa: BLE001
            if isinstance(e, KeyboardInterrupt):
                raise
            fail(peer, e)
            pool.remove(peer)
            return None

    # Warm-up, round-robin. Peers whose preparation already ended with a steady
    # (non-compiling) call may skip warm-up once they have used the warm-up budget.
    t_w = time.perf_counter()
    with torch.no_grad():
        wcount = {p.key: 0 for p in active}
        wspent = {p.key: 0.0 for p in active}
        pending = list(active)
        while pending:
            for peer in list(pending):
                k = peer.key
                # Slow peers whose preparation already ended with a steady call skip
                # the warm-up; every other peer gets at least one warm-up call.
                skip = (peer.prep_is_steady and wcount[k] == 0
                        and peer.last_prep_call_s >= args.warmup_budget)
                done = skip or wcount[k] >= args.warmup or (
                    wspent[k] >= args.warmup_budget and wcount[k] >= 1)
                if done:
                    pending.remove(peer)
                    continue
                dt = call_or_drop(peer, pending)
                if dt is None:
                    continue
                wcount[k] += 1
                wspent[k] += dt
                time.sleep(gap)
    res["warmup_s"] = time.perf_counter() - t_w

    # Timed iterations, round-robin across peers: A, B, C, ..., A, B, C, ...
    # A peer stops after `iters` samples, or once it has >= min_iters samples and has
    # spent >= peer_budget seconds, or (whatever its count) when one more sample
    # would take it past peer_cap seconds.
    t_t = time.perf_counter()
    rng = random.Random(args.seed)
    gc.collect()
    gc.disable()
    try:
        with torch.no_grad():
            running = list(active)
            while running:
                # Every round runs each remaining peer once, in a freshly shuffled order,
                # so whatever one runtime leaves behind (spinning threads, caches) does
                # not always land on the same neighbour.
                order = list(running)
                rng.shuffle(order)
                for peer in order:
                    k = peer.key
                    n, sp = len(times[k]), spent[k]
                    last = times[k][-1] if n else 0.0
                    if (n >= args.iters or (n >= args.min_iters and sp >= args.peer_budget)
                            or (n >= 1 and sp + last > args.peer_cap)):
                        running.remove(peer)
                        continue
                    dt = call_or_drop(peer, running)
                    if dt is None:
                        continue
                    times[k].append(dt)
                    spent[k] += dt
                    time.sleep(gap)
    finally:
        gc.enable()
    res["timing_s"] = time.perf_counter() - t_t

    for peer in active:
        r = res["peers"][peer.key]
        r.update(summarize(times[peer.key]))
        r["warmup_iters"] = wcount.get(peer.key, 0)
        if peer.key == "torch_tvm":
            try:
                import torch_tvm

                s = torch_tvm.stats()
                r.setdefault("torch_tvm", {})["fallback_calls_total"] = s["fallback_calls"]
                r["torch_tvm"]["compiles_total"] = s["compiles"]
            except Exception:  # noqa: BLE001
                pass
    for peer in active:
        peer.close()
    return res


def run_overhead(spec: dict) -> dict:
    """Fixed cost of one tiny torch_tvm group call vs eager and plain TorchScript."""
    args = types.SimpleNamespace(**spec["args"])
    threads = spec["threads"]
    torch.set_num_threads(threads)
    res = {"kind": "overhead", "threads": threads, "peers": {}}
    x = torch.randn(1, 8)

    def f(t):
        return torch.relu(t + 1)

    ref = f(x)
    fns = {"eager": f}
    with torch.no_grad():
        ts = torch.jit.trace(f, x)
        for _ in range(3):
            ts(x)
        fns["ts_default"] = ts
        try:
            import torch_tvm

            before = torch_tvm.stats()
            torch_tvm.enable(num_threads=threads)
            try:
                tt = torch.jit.trace(f, x)
                for _ in range(3):
                    y = tt(x)
            finally:
                torch_tvm.disable()
            s = torch_tvm.stats()
            res["torch_tvm_groups"] = len(s["groups"]) - len(before["groups"])
            res["torch_tvm_compiles"] = s["compiles"] - before["compiles"]
            res["max_abs_diff"] = float((y - ref).abs().max())
            fns["torch_tvm"] = tt
        except BaseException as e:  # noqa: BLE001
            res["torch_tvm_error"] = P.short_error(e)
        inner = args.overhead_inner
        per = {k: [] for k in fns}
        gc.collect()
        gc.disable()
        try:
            for _ in range(args.overhead_rounds):
                for k, fn in fns.items():
                    t0 = time.perf_counter()
                    for _ in range(inner):
                        fn(x)
                    per[k].append((time.perf_counter() - t0) / inner)
        finally:
            gc.enable()
    for k, ts_ in per.items():
        s = summarize(ts_)
        res["peers"][k] = {"median_us": s["median_ms"] * 1e3, "p90_us": s["p90_ms"] * 1e3,
                           "rounds": s["n"], "calls_per_round": inner}
    if "torch_tvm" in res["peers"]:
        med = {k: v["median_us"] for k, v in res["peers"].items()}
        res["overhead_vs_eager_us"] = med["torch_tvm"] - med["eager"]
        res["overhead_vs_ts_us"] = med["torch_tvm"] - med["ts_default"]
    return res


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def main():
    spec_path, out_path = sys.argv[1], sys.argv[2]
    with open(spec_path) as f:
        spec = json.load(f)
    t0 = time.perf_counter()
    try:
        if spec["kind"] == "overhead":
            res = run_overhead(spec)
        else:
            res = run_model_config(spec)
    except BaseException as e:  # noqa: BLE001
        res = dict(kind=spec["kind"], model=spec.get("model"), batch=spec.get("batch"),
                   threads=spec["threads"], fatal=P.short_error(e, 600),
                   traceback=traceback.format_exc()[-3000:], peers={})
    res["wall_s"] = time.perf_counter() - t0
    with open(out_path, "w") as f:
        json.dump(res, f, indent=1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip slow teardown of TVM / OpenVINO / dynamo


if __name__ == "__main__":
    main()
