"""Relax pass: for each norm, softmax, sum, mean and global average pool, TVM's
kernel or ATen's, whichever is faster for that op and shape on this machine.

TVM's generated kernels for these ops (_legalize + _schedule_reduction) are
usually faster than ATen's, but not for every shape: a softmax over 197
tokens, for example, spends its time in the 5-element tails, and a global
average pool of 7x7 NCHW maps reduces 4096 rows of 49, where a 16-lane
vector reduction is mostly tail and horizontal sum. So the first
build that meets an (op, shape, attributes, target, threads) measures both,
once, a few runs each:
  - TVM: the op alone through the same legalisation, fusion and schedules;
  - ATen: the extern kernel (csrc/kernels/aten_kernels.cpp) it would call.
Both are timed through the same FFI call path, in alternating rounds, best
round of each. Where the op has a neighbour that TVM could fuse it with (an
elementwise producer or consumer), ATen must be 10% faster to win; an op
with none (its input is a parameter or an extern kernel's result, and no TVM
op reads its output) goes to whichever is faster. The decision is kept for
the rest of the process. An op
that goes to ATen becomes a call_pure_packed to the extern kernel, so it no
longer fuses with its neighbours (TVM's number is measured without fusion:
the choice leans towards TVM only when TVM is faster on its own).

`decisions()` lists every choice with both times; explain() prints them and
stats()["kernels"]["aten_*_calls"] count the ATen calls.
`force` (None, "tvm" or "aten") overrides the measurement, for tests.
"""
from __future__ import annotations

import threading
import time

import numpy as np
import tvm
import tvm_ffi
from tvm import relax

from . import _tuning

force: str | None = None

_lock = threading.Lock()
_decisions: dict[tuple, dict] = {}

_OPS = {
    "relax.nn.softmax": "softmax",
    "relax.nn.log_softmax": "log_softmax",
    "relax.nn.layer_norm": "layer_norm",
    "relax.nn.group_norm": "group_norm",
    "relax.sum": "sum",
    "relax.mean": "mean",
    "relax.nn.adaptive_avg_pool2d": "adaptive_avg_pool2d",
}


def decisions() -> list[dict]:
    with _lock:
        return [dict(d) for d in _decisions.values()]


def _static_f32(expr) -> list[int] | None:
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or str(ty.dtype) != "float32" or ty.shape is None:
        return None
    try:
        return [int(d) for d in ty.shape.values]
    except (TypeError, ValueError, AttributeError):
        return None


def _extern_args(kind, call, shape):
    """(extern name, extra scalar args) for a supported call, else None."""
    nd = len(shape)
    attrs = call.attrs
    if kind in ("softmax", "log_softmax"):
        return "torch_tvm.kernels.aten_softmax", [int(attrs.axis) % nd, kind == "log_softmax"]
    if kind == "layer_norm":
        axes = sorted(int(a) % nd for a in attrs.axes)
        if axes != list(range(nd - len(axes), nd)) or not (attrs.center and attrs.scale):
            return None
        return "torch_tvm.kernels.aten_layer_norm", [len(axes), float(attrs.epsilon)]
    if kind == "group_norm":
        axes = [int(a) % nd for a in attrs.axes]
        if int(attrs.channel_axis) % nd != 1 or axes != list(range(2, nd)) \
                or not (attrs.center and attrs.scale):
            return None
        return "torch_tvm.kernels.aten_group_norm", [int(attrs.num_groups), float(attrs.epsilon)]
    if kind in ("sum", "mean"):
        axes = range(nd) if attrs.axis is None else [int(a) % nd for a in attrs.axis]
        return _reduce_args(axes, bool(attrs.keepdims), kind == "mean", shape)
    if kind == "adaptive_avg_pool2d":  # global pooling only: a mean over H and W
        layout = str(attrs.layout)
        if [int(s) for s in attrs.output_size or []] != [1, 1] or layout != str(attrs.out_layout) \
                or sorted(layout) != sorted("NCHW") or nd != 4:
            return None
        return _reduce_args([layout.index("H"), layout.index("W")], True, True, shape)
    return None


def _reduce_args(axes, keepdim, mean, shape):
    axes = sorted(set(axes))
    if not axes or 0 in shape:
        return None
    return "torch_tvm.kernels.aten_reduce", [sum(1 << a for a in axes), keepdim, mean]


def _best_of_interleaved(calls, rounds=7, per_round=5):
    """Best time per call (us) of each (fn, args), timed in alternating rounds
    so that a burst of other load on the machine hits both alike."""
    for fn, args in calls:
        fn(*args)
        fn(*args)
    best = [float("inf")] * len(calls)
    for _ in range(rounds):
        for i, (fn, args) in enumerate(calls):
            start = time.perf_counter()
            for _ in range(per_round):
                fn(*args)
            best[i] = min(best[i], (time.perf_counter() - start) / per_round)
    return [b * 1e6 for b in best]


def _random_args(call):
    rng = np.random.default_rng(0)
    return [tvm.runtime.tensor(rng.standard_normal(_static_f32(a)).astype("float32"))
            for a in call.args]


def _tvm_kernel(call, target):
    """The op alone through torch_tvm's legalisation, fusion and schedules."""
    from ._legalize import legalize_ops  # noqa: PLC0415 - avoid an import cycle
    from ._schedule import default_cpu_schedule  # noqa: PLC0415

    params = [relax.Var(f"a{i}", a.ty) for i, a in enumerate(call.args)]
    bb = relax.BlockBuilder()
    with bb.function("main", params):
        with bb.dataflow():
            out = bb.emit_output(relax.Call(call.op, params, call.attrs))
        bb.emit_func_output(out)
    seq = tvm.transform.Sequential([
        legalize_ops(), relax.transform.AnnotateTIROpPattern(), relax.transform.FuseOps(),
        relax.transform.FuseTIR(), default_cpu_schedule()])
    with target:
        ex = tvm.compile(seq(bb.get()), target=target)
    return relax.VirtualMachine(ex, tvm.cpu())["main"]


# Where the op could fuse, ATen must win by this margin: a choice made on
# noise costs the fusion.
_MARGIN = 0.9

# Calls that TVM's FuseOps never fuses with a neighbour.
_NOT_FUSIBLE = ("relax.call_pure_packed", "relax.call_dps_packed", "relax.call_tir",
                "relax.reshape")


def _tvm_op(value) -> bool:
    return isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) \
        and value.op.name not in _NOT_FUSIBLE


def _fusible_calls(func) -> set:
    """The bound calls of `func` with a neighbour TVM could fuse them with: an
    argument bound to a TVM op, or a TVM op reading their result."""
    bound, read_by_tvm_op, calls = {}, set(), []
    if not isinstance(func.body, relax.SeqExpr):
        return set()
    for block in func.body.blocks:
        for binding in block.bindings:
            if isinstance(binding, relax.VarBinding):
                bound[binding.var] = binding.value
                calls.append(binding)
                if _tvm_op(binding.value):
                    read_by_tvm_op.update(a for a in binding.value.args
                                          if isinstance(a, relax.Var))
    fusible = set()
    for binding in calls:
        value = binding.value
        if not isinstance(value, relax.Call):
            continue
        producers = [bound.get(a) for a in value.args if isinstance(a, relax.Var)]
        if binding.var in read_by_tvm_op or any(_tvm_op(p) for p in producers):
            fusible.add(value)
    return fusible


def _decide(kind, call, shape, name, scalars, target, threads, fusible):
    key = (kind, tuple(shape), tuple(scalars), str(target), threads, fusible)
    db_key = _tuning.choice_key(kind, [list(shape), list(scalars), fusible], threads)
    with _lock:
        known = _decisions.get(key)
    if force is None and known is not None and not known["forced"]:
        _tuning.note_choice(db_key, known)
        return known["choice"] == "aten"
    stored = _tuning.lookup_choice(db_key) if force is None else None
    if stored is not None and stored.get("choice") in ("aten", "tvm"):
        with _lock:
            _decisions[key] = stored
        _tuning.note_choice(db_key, stored)
        return stored["choice"] == "aten"
    if force is not None:
        choice, tvm_us, aten_us = force, None, None
    else:
        args = _random_args(call)
        aten = (tvm_ffi.get_global_func(name),
                args + [int(v) if isinstance(v, bool) else v for v in scalars])
        try:
            tvm_us, aten_us = _best_of_interleaved([(_tvm_kernel(call, target), args), aten])
        except Exception:  # noqa: BLE001 - TVM cannot build it alone: ATen
            tvm_us, aten_us = float("inf"), _best_of_interleaved([aten])[0]
        margin = _MARGIN if fusible else 1.0
        choice = "aten" if aten_us < margin * tvm_us else "tvm"
    with _lock:
        _decisions[key] = {"op": kind, "shape": list(shape), "tvm_us": tvm_us,
                           "aten_us": aten_us, "choice": choice, "threads": threads,
                           "fusible": fusible, "kernel": choice,
                           "times_us": {"tvm": tvm_us, "aten": aten_us} if force is None else {},
                           "forced": force is not None, "source": "measured"}
        entry = _decisions[key]
    if force is None:
        _tuning.note_choice(db_key, entry)
    return choice == "aten"


def _rewrite(func, target, threads):
    fusible = _fusible_calls(func)

    @relax.expr_functor.mutator
    class _Choose(relax.PyExprMutator):
        def visit_call_(self, call):  # noqa: D102 - PyExprMutator hook
            out_ty, can_fuse = call.ty, call in fusible
            call = super().visit_call_(call)
            kind = _OPS.get(getattr(call.op, "name", None))
            shape = _static_f32(call.args[0]) if kind else None
            if shape is None or any(_static_f32(a) is None for a in call.args) \
                    or not isinstance(out_ty, relax.TensorType) or out_ty.shape is None:
                return call
            extern = _extern_args(kind, call, shape)
            if extern is None:
                return call
            name, scalars = extern
            if not _decide(kind, call, shape, name, scalars, target, threads, can_fuse):
                return call
            prims = [relax.prim_value(int(v) if isinstance(v, bool) else v) for v in scalars]
            return relax.op.call_pure_packed(name, *call.args, *prims,
                                             ty_args=out_ty)

    return _Choose().visit_expr(func)


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.ChooseAtenOrTvmKernels")
def choose_kernels(mod, _ctx):
    target = tvm.target.Target.current()
    threads = int(target.attrs.get("num-cores", 1)) if target is not None else 1
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gv] = _rewrite(func, target, threads)
    return mod
