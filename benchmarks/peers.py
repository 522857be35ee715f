"""The peers being compared. Each peer prepares itself (trace / export / compile +
first call(s)) and then exposes `call()`, which runs one inference and returns its
latency in seconds. Failures are turned into a status + reason by the worker, never
into a missing row.
"""
from __future__ import annotations

import copy
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

# Order matters: TorchScript peers are traced and warmed up BEFORE torch_tvm is
# enabled (torch_tvm is last), so torch_tvm's TorchScript pass never touches their
# plans; the profiling executor caches the plan it optimises on the 2nd call.
PEER_ORDER = ["eager", "ts_default", "ts_freeze", "inductor", "onnxruntime", "openvino",
              "relax_dynamo", "torch_tvm_untuned", "torch_tvm"]
PEER_LABELS = {
    "eager": "eager PyTorch",
    "ts_default": "TorchScript (trace)",
    "ts_freeze": "TorchScript freeze+optimize_for_inference",
    "inductor": "torch.compile inductor (freezing)",
    "onnxruntime": "onnxruntime",
    "openvino": "torch.compile openvino",
    "relax_dynamo": "TVM relax_dynamo",
    "torch_tvm_untuned": "torch_tvm untuned (shipped_tuning=False: no tuning database)",
    "torch_tvm": "torch_tvm tuned (the database shipped for this CPU, when one matches)",
}


class PeerError(Exception):
    """A peer could not run; the message goes into the table."""


def short_error(e: BaseException, limit: int = 300) -> str:
    msg = (str(e) if isinstance(e, PeerError) else f"{type(e).__name__}: {e}").strip()
    # The interesting part of dynamo errors is usually the first line.
    boiler = ("Set TORCHDYNAMO_VERBOSE", "For even more developer context",
              "You can suppress this exception")
    lines = [ln.strip() for ln in msg.splitlines()
             if ln.strip() and not ln.strip().startswith(boiler)]
    msg = " / ".join(lines[:3])
    return msg[:limit]


def max_abs_diff(y, ref) -> float:
    if isinstance(y, (list, tuple)):
        y = y[0]
    return float((y.detach().float() - ref.float()).abs().max())


def rel_diff(diff, ref) -> float | None:
    """max |y - ref| / max |ref|: comparable across models whose outputs differ in scale
    (random-init mobilenet_v2 logits are ~1e-14)."""
    if diff is None:
        return None
    scale = float(ref.float().abs().max())
    return diff / scale if scale > 0 else None


class Peer:
    key = "?"
    #: the prep already ended with a steady-state (non-compiling) call, so the
    #: warm-up phase may skip it for slow peers.
    prep_is_steady = False
    #: duration of the last call made during prepare() (TorchScript-based peers)
    last_prep_call_s = 0.0

    def __init__(self, ctx):
        self.ctx = ctx
        self.notes: list[str] = []
        self.fn = None

    def prepare(self):
        """Build the peer and run it until its first output; return that output."""
        raise NotImplementedError

    def call(self) -> float:
        fn, x = self.fn, self.ctx.x
        t0 = time.perf_counter()
        fn(x)
        return time.perf_counter() - t0

    def output(self):
        return self.fn(self.ctx.x)

    def close(self):
        pass


class Eager(Peer):
    key = "eager"

    def prepare(self):
        self.fn = self.ctx.model
        return self.fn(self.ctx.x)


def _trace(model, x):
    with torch.no_grad():
        return torch.jit.trace(model, x, check_trace=False)


def _three_calls(peer, tm):
    for _ in range(3):
        t0 = time.perf_counter()
        y = tm(peer.ctx.x)
        peer.last_prep_call_s = time.perf_counter() - t0
    return y


class TSDefault(Peer):
    key = "ts_default"
    prep_is_steady = True

    def prepare(self):
        tm = _trace(self.ctx.model, self.ctx.x)
        # 1st call profiles, 2nd call optimises and caches the plan, 3rd is steady.
        y = _three_calls(self, tm)
        self.fn = tm
        return y


class TSFreeze(Peer):
    key = "ts_freeze"
    prep_is_steady = True

    def prepare(self):
        tm = _trace(self.ctx.model, self.ctx.x)
        tm = torch.jit.optimize_for_inference(torch.jit.freeze(tm.eval()))
        y = _three_calls(self, tm)
        self.fn = tm
        return y


def _bump_dynamo_limits():
    import torch._dynamo

    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        if hasattr(cfg, name):
            setattr(cfg, name, max(getattr(cfg, name), 64))


class Inductor(Peer):
    key = "inductor"

    def prepare(self):
        import torch._inductor.config as icfg

        _bump_dynamo_limits()
        m = copy.deepcopy(self.ctx.model)
        with icfg.patch(freezing=True):
            c = torch.compile(m, backend="inductor")
            y = c(self.ctx.x)  # freezing is applied while compiling (first call)
        self.fn = c
        if self.ctx.args.inductor_cache == "cold":
            self.notes.append("cold inductor cache")
        return y


class OnnxRuntime(Peer):
    key = "onnxruntime"

    def prepare(self):
        import onnxruntime as ort

        x = self.ctx.x
        buf = io.BytesIO()
        exporter = "legacy TorchScript exporter (dynamo=False)"
        try:
            torch.onnx.export(self.ctx.model, (x,), buf, dynamo=False, input_names=["x"],
                              output_names=["y"], opset_version=17, do_constant_folding=True)
        except Exception as e:  # noqa: BLE001
            legacy_err = short_error(e, 120)
            buf = io.BytesIO()
            prog = torch.onnx.export(self.ctx.model, (x,), dynamo=True, input_names=["x"],
                                     output_names=["y"])
            buf.write(prog.model_proto.SerializeToString())
            exporter = f"dynamo exporter (legacy failed: {legacy_err})"
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.ctx.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if not self.ctx.args.ort_spin:
            # ORT's idle intra-op threads otherwise keep spinning for a while after
            # each run and slow down whichever peer runs next in the round-robin
            # (measured: OpenVINO after ORT 29 -> 47 ms, resnet18 b1 2 threads) while
            # ORT itself gains < 2%.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self.notes.append("intra-op spinning off")
        sess = ort.InferenceSession(buf.getvalue(), so, providers=["CPUExecutionProvider"])
        in_name = sess.get_inputs()[0].name

        def run(inp):
            return torch.from_numpy(sess.run(None, {in_name: inp.numpy()})[0])

        self.notes.append(exporter)
        self.fn = run
        return run(x)


class OpenVINO(Peer):
    key = "openvino"

    def prepare(self):
        import torch._dynamo

        _bump_dynamo_limits()
        # `import openvino.torch` flips torch._dynamo.config.inline_inbuilt_nn_modules to
        # False process-wide; keep that setting for the OpenVINO compile only so the
        # other torch.compile peers are not affected.
        saved = torch._dynamo.config.inline_inbuilt_nn_modules
        import openvino  # noqa: F401
        import openvino.torch  # noqa: F401  (registers backend="openvino")
        from openvino.frontend.pytorch.torchdynamo import backend as ovb

        ov_inline = torch._dynamo.config.inline_inbuilt_nn_modules
        torch._dynamo.config.inline_inbuilt_nn_modules = saved

        # OpenVINO silently falls back to inductor's compile_fx when its own path
        # raises; record that instead of reporting inductor numbers as OpenVINO's.
        fallbacks = []
        orig_compile_fx = ovb.compile_fx

        def spy_compile_fx(*a, **k):
            fallbacks.append(1)
            return orig_compile_fx(*a, **k)

        ovb.compile_fx = spy_compile_fx
        options = {
            "device": "CPU",
            # aot_autograd=True: the default (make_fx) path fails in dynamo guard
            # creation with torch 2.14 ("sources must not be empty for symbol ...").
            "aot_autograd": True,
            # f32: on CPUs with AVX512-BF16 OpenVINO defaults to bf16 inference; keep
            # every peer in fp32. Threads: match the other peers.
            "config": {"INFERENCE_PRECISION_HINT": "f32",
                       "INFERENCE_NUM_THREADS": str(self.ctx.threads)},
        }
        m = copy.deepcopy(self.ctx.model)
        try:
            with torch._dynamo.config.patch(inline_inbuilt_nn_modules=ov_inline):
                c = torch.compile(m, backend="openvino", options=options)
                y = c(self.ctx.x)
        finally:
            ovb.compile_fx = orig_compile_fx
        if fallbacks:
            raise PeerError("OpenVINO backend failed and fell back to inductor compile_fx "
                            f"({len(fallbacks)} graph(s)); not an OpenVINO result")
        self.notes.append("aot_autograd=True, f32 precision hint")
        self.fn = c
        return y


class RelaxDynamo(Peer):
    """tvm.relax.frontend.torch.relax_dynamo in a child process (time-boxed compile)."""

    key = "relax_dynamo"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.proc = None
        self.q: queue.Queue = queue.Queue()
        self.tmpdir = None
        self.first_call_s = None
        self.diff = None

    def _reader(self):
        for line in self.proc.stdout:
            if line.startswith("@@RD@@ "):
                try:
                    self.q.put(json.loads(line[7:]))
                except ValueError:
                    pass
        self.q.put(None)  # EOF

    def _get(self, timeout):
        try:
            msg = self.q.get(timeout=timeout)
        except queue.Empty:
            return "timeout"
        return msg

    def _stderr_tail(self):
        try:
            with open(os.path.join(self.tmpdir, "stderr.txt")) as f:
                lines = [ln.strip() for ln in f.read().splitlines() if ln.strip()]
            return " / ".join(lines[-2:])[:300]
        except OSError:
            return ""

    def prepare(self):
        ctx = self.ctx
        self.tmpdir = tempfile.mkdtemp(prefix="rd_")
        spec = os.path.join(self.tmpdir, "spec.pt")
        torch.save({"model": ctx.model, "x": ctx.x, "ref": ctx.ref}, spec)
        env = dict(os.environ)
        env["TVM_NUM_THREADS"] = str(ctx.threads)
        env["OMP_NUM_THREADS"] = str(ctx.threads)
        self.stderr = open(os.path.join(self.tmpdir, "stderr.txt"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "relax_dynamo_child.py"), spec,
             str(ctx.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr, text=True, bufsize=1, cwd=HERE, env=env)
        threading.Thread(target=self._reader, daemon=True).start()
        msg = self._get(300)  # imports torch + tvm: not part of the box
        if msg == "timeout" or msg is None or msg.get("event") != "ready":
            raise PeerError(f"relax_dynamo child did not start: {self._stderr_tail()}")
        box = ctx.args.relax_dynamo_timeout
        self.proc.stdin.write("compile\n")
        self.proc.stdin.flush()
        t0 = time.perf_counter()
        msg = self._get(box)
        if msg == "timeout":
            self.close(kill=True)
            raise PeerError(f"timeout: compile + first run exceeded {box:g} s")
        if msg is None:
            raise PeerError(f"child died: {self._stderr_tail()}")
        if not msg.get("ok"):
            raise PeerError(msg.get("error", "unknown error"))
        self.first_call_s = msg["first_call_s"]
        self.diff = msg["max_abs_diff"]
        self.box_wall = time.perf_counter() - t0
        self.notes.append("runs in a child process (time-boxed)")
        return None

    def call(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        msg = self._get(600)
        if msg == "timeout" or msg is None:
            raise PeerError("relax_dynamo child stopped answering")
        if not msg.get("ok"):
            raise PeerError(msg.get("error", "run failed"))
        return msg["t"]

    def output(self):
        return None

    def close(self, kill: bool = False):
        if kill and self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001
                pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "stderr", None):
            self.stderr.close()
        if self.tmpdir:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None


class TorchTVM(Peer):
    key = "torch_tvm"
    prep_is_steady = True
    options: dict = {}  # enable() options beyond the defaults

    def __init__(self, ctx):
        super().__init__(ctx)
        self.tvm_info: dict = {}

    def prepare(self):
        import torch_tvm

        ctx = self.ctx
        # Stats are summed over live groups; snapshot so we can subtract.
        before = torch_tvm.stats()
        torch_tvm.enable(num_threads=ctx.threads, **self.options)
        try:
            tm = _trace(ctx.model, ctx.x)
            # Run until a call compiles nothing new (profiling executor: 1st call
            # profiles, 2nd optimises; torch_tvm compiles groups on first use).
            calls = 0
            last = before["compiles"] + before["compile_failures"]
            while True:
                t0 = time.perf_counter()
                y = tm(ctx.x)
                self.last_prep_call_s = time.perf_counter() - t0
                calls += 1
                s = torch_tvm.stats()
                now = s["compiles"] + s["compile_failures"]
                if calls >= 2 and now == last:
                    break
                last = now
                if calls >= 6:
                    self.notes.append("still compiling after 6 calls")
                    break
            graph = None
            try:
                graph = torch.jit.last_executed_optimized_graph()
            except Exception:  # noqa: BLE001
                pass
        finally:
            torch_tvm.disable()  # the optimised plan keeps its TVM groups
        self.fn = tm
        self.prep_calls = calls
        self._describe(torch_tvm, before, graph)
        return y

    def _describe(self, torch_tvm, before, graph):
        s = torch_tvm.stats()
        info = {k: s[k] - before.get(k, 0) for k in
                ("compiles", "compile_failures", "compile_seconds", "fallback_calls")}
        old_ids = {g["id"] for g in before["groups"]}
        groups = [g for g in s["groups"] if g["id"] not in old_ids]
        info["groups"] = len(groups)
        info["group_ops"] = sum(len(g["ops"]) for g in groups)
        fails = {}
        for g in groups:
            for why in g.get("failures", {}).values():
                fails[why[:160]] = fails.get(why[:160], 0) + 1
        info["failures"] = fails
        outside = None
        if graph is not None:
            try:
                ex = torch_tvm._C.explain_graph(graph)
                outside = {}
                for o in ex["outside"]:
                    outside[o["op"]] = outside.get(o["op"], 0) + 1
                info["group_ops"] = sum(len(g["ops"]) for g in ex["groups"]) or \
                    info["group_ops"]
            except Exception:  # noqa: BLE001 - the explain API is optional here
                outside = None
        info["outside"] = outside
        info["prep_calls"] = self.prep_calls
        # oneDNN or Winograd per 3x3 stride-1 conv shape, with the times that chose it
        info["conv_choices"] = torch_tvm._winograd.decisions()
        # oneDNN or the tuned TVM kernel per conv (tuning database), and the databases
        info["tvm_conv_choices"] = torch_tvm._tvm_convs.decisions()
        # the linear kernel per (rows, in, out, post-op), with the times that chose it
        info["linear_choices"] = torch_tvm._linear_choice.decisions()
        info["tuning"] = torch_tvm.stats()["tuning"]
        self.tvm_info = info
        note = (f"{info['groups']} TVM group(s), {info['group_ops']} op(s) in TVM, "
                f"compile {info['compile_seconds']:.1f} s")
        if outside:
            n = sum(outside.values())
            top = ", ".join(f"{k} ({v})" for k, v in sorted(outside.items(),
                                                           key=lambda kv: -kv[1])[:4])
            note += f"; {n} op(s) left to PyTorch ({top})"
        if info["compile_failures"]:
            note += f"; {info['compile_failures']} compile failure(s)"
        if fails:
            note += f"; failure: {next(iter(fails))[:100]}"
        self.notes.append(note)

    def call(self) -> float:
        return super().call()


class TorchTVMUntuned(TorchTVM):
    """torch_tvm without a tuning database: default schedules, oneDNN for every
    conv but the 3x3 stride-1 ones measured faster as Winograd at first compile."""
    key = "torch_tvm_untuned"
    options = {"shipped_tuning": False}


PEER_CLASSES = {c.key: c for c in (Eager, TSDefault, TSFreeze, Inductor, OnnxRuntime,
                                   OpenVINO, RelaxDynamo, TorchTVMUntuned, TorchTVM)}
