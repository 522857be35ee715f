"""Relax pass: 3x3 stride-1 convolutions as Winograd F(m, 3) kernels where
that is measured faster than oneDNN's direct convolution.

Runs after the NHWC layout conversion, before OffloadToOneDNN. A conv2d with
a constant OHWI 3x3 weight, stride 1, dilation 1, one group and symmetric
padding, plus what follows it (a constant per-channel bias add, a residual
add, relu), is a candidate. For each candidate shape the first build
measures, on this machine with the real thread budget, a few runs each:
  - oneDNN: the conv (and bias) as OffloadToOneDNN would run it;
  - Winograd F(2,3) and F(4,3) (_winograd_kernels): input transform,
    batched GEMM against the weight transformed once, now, and an output
    transform that applies the bias, the residual add and relu.
Inputs with a NaN or an infinity give eager's result: a tile whose input
holds one is computed directly, by the output transform (Winograd's
transforms would spread a NaN over the tile and turn inf into NaN). A weight
with one is never transformed.

The fastest wins (Winograd must beat oneDNN by `_MARGIN`, so that noise does
not pick it); the decision is kept for the rest of the process, and listed
by decisions() and explain(). stats()["kernels"]["winograd_calls"] counts
the Winograd convolutions models ran (the choice's timing runs do not count, nor
do its oneDNN candidate's packing and calls: a timing scope).

`mode`: "auto" (measure), "off" (never), or "F2"/"F4" (always that tile
where eligible, for tests).
"""
from __future__ import annotations

import threading

import numpy as np
import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

from . import _tuning, _tvm_convs
from . import _winograd_kernels as wk
from ._aten_choice import _best_of_interleaved
from ._relax_uses import Bindings

MODES = ("auto", "off", "F2", "F4")
mode = "auto"
TILES = (2, 4)

# Winograd must be this much faster than oneDNN to be chosen.
_MARGIN = 0.95

_lock = threading.Lock()
_decisions: dict[tuple, dict] = {}


def decisions() -> list[dict]:
    with _lock:
        return [dict(d) for d in _decisions.values()]


def _lanes(target) -> int:
    from ._schedule import _vector_lanes  # noqa: PLC0415 - import cycle
    return _vector_lanes(target, 32)


def plan_for(shape: wk.Shape, m: int, lanes: int) -> wk.Plan:
    return wk.Plan(shape, m, lanes)


def eligible(conv, x) -> wk.Shape | None:
    """The Winograd shape of a relax conv2d call, or None."""
    sig = _tvm_convs.signature(conv, x)
    if (sig is None or str(x.ty.dtype) != "float32" or sig.groups != 1 or sig.wc != sig.c
            or (sig.kh, sig.kw) != (3, 3) or sig.stride != (1, 1) or sig.dilation != (1, 1)):
        return None
    top, left, bottom, right = sig.pad
    if top != bottom or left != right or max(sig.pad) > 2:
        return None
    shape = wk.Shape(sig.n, sig.h, sig.w, sig.c, sig.k, top, left)
    return shape if shape.out_h > 0 and shape.out_w > 0 else None


def build_call(bb_add, x, weight: np.ndarray, bias, residual, relu: bool, plan: wk.Plan,
               count: bool = True):
    """The Relax expression computing the conv by Winograd: input transform,
    batched GEMM against the weight transformed now, output transform.

    bb_add(func, name) adds a PrimFunc to the module and returns its GlobalVar."""
    s = plan.shape
    a2 = plan.alpha ** 2
    fin, fout = wk.kernels(plan, bias is not None, residual is not None, relu, count)
    gin, gout = bb_add(fin, "winograd_input"), bb_add(fout, "winograd_output")
    v = relax.call_tir(gin, [x], relax.TensorType([a2, plan.tiles, s.c], "float32"))
    m = _gemm(v, wk.transform_weight(weight, plan),
              relax.TensorType([a2, plan.tiles, s.k], "float32"))
    args = [m, x, relax.const(wk.direct_weight(weight))]
    args += ([bias] if bias is not None else []) + ([residual] if residual is not None else [])
    return relax.call_tir(gout, args, relax.TensorType([s.n, s.out_h, s.out_w, s.k], "float32"))


# "packed": the alpha^2 GEMMs on torch_tvm's packed GEMM (U packed once, now);
# "matmul": at::matmul on the constant U (MKL, which packs U on every call).
# Measured on ResNet18's Winograd layers (Zen 3, 2 threads): see docs/performance.md.
GEMM_KERNELS = ("packed", "matmul")
gemm_kernel = "packed"


def _gemm_in_use() -> str:
    """gemm_kernel, or "matmul" where the packed GEMM cannot run (no AVX2/FMA):
    what the GEMMs really run on, so also what a choice is keyed on."""
    if gemm_kernel == "packed" and not tvm_ffi.get_global_func(wk.PACKED_GEMM_SUPPORTED)():
        return "matmul"
    return gemm_kernel


def _gemm(v, u: np.ndarray, ty):
    """M[a] = V[a] @ U[a]: on the packed GEMM (its weights packed now, in the
    build's packed-weight scope), or at::matmul (see _gemm_in_use)."""
    if _gemm_in_use() == "packed":
        handle = tvm_ffi.get_global_func(wk.PACKED_GEMM_PREPACK)(
            tvm.runtime.tensor(np.ascontiguousarray(u)))
        return relax.op.call_pure_packed(wk.PACKED_GEMM, v, relax.prim_value(handle), ty_args=ty)
    return relax.op.call_pure_packed(wk.GEMM, v, relax.const(u), ty_args=ty)


def _candidates(shape: wk.Shape, weight, bias, tiles, target):
    """One compiled module with a VM function x -> conv(x) + bias per
    candidate: "onednn" (OffloadToOneDNN's kernel) and "F<m>" for each tile
    size (one compile for all: most of the cost of a choice is compiling).
    Returns ({name: function}, owner of the prepacked oneDNN weight)."""
    from ._offload import offload_to_onednn  # noqa: PLC0415 - import cycle

    bb = relax.BlockBuilder()
    b = relax.const(bias.reshape(shape.k))
    lanes = _lanes(target)
    for name in ["onednn"] + [f"F{m}" for m in tiles]:
        x = relax.Var("x", relax.TensorType([shape.n, shape.h, shape.w, shape.c], "float32"))
        with bb.function(name, [x]):
            with bb.dataflow():
                if name == "onednn":
                    conv = relax.op.nn.conv2d(x, relax.const(weight),
                                              padding=[shape.pad_h, shape.pad_w],
                                              data_layout="NHWC", kernel_layout="OHWI")
                    out = bb.emit(relax.op.add(bb.emit(conv), b))
                else:
                    out = bb.emit(build_call(bb.add_func, x, weight, b, None, False,
                                             plan_for(shape, int(name[1:]), lanes),
                                             count=False))
                out = bb.emit_output(out)
            bb.emit_func_output(out)
    mod = bb.get()
    begin = tvm_ffi.get_global_func("torch_tvm.kernels.begin_timing_scope")
    end = tvm_ffi.get_global_func("torch_tvm.kernels.end_packed_weight_scope")
    begin()
    try:
        # TIR's CSE is the slowest pass on the straight-line transforms; LLVM's
        # value numbering does the same job.
        with target, tvm.transform.PassContext(opt_level=3,
                                               config={"tirx.disable_cse_tir": True}):
            ex = tvm.compile(offload_to_onednn(mod), target=target)
    finally:
        owner = end()  # the prepacked oneDNN weight lives as long as `owner`
    vm = relax.VirtualMachine(ex, tvm.cpu())
    return {gv.name_hint: vm[gv.name_hint] for gv, f in mod.functions.items()
            if isinstance(f, relax.Function)}, owner


def _tiles_worth_measuring(shape: wk.Shape) -> tuple[int, ...]:
    """F(2,3) only beats F(4,3) where there are few tiles: its transformed
    weight is 16/36 of F(4,3)'s, and with few tiles the GEMMs stream the
    weight from memory (measured on ResNet18's layers: F(2,3) wins at 14x14,
    F(4,3) at 28x28 and 56x56). Skipping it elsewhere halves the compile time
    of a choice."""
    return TILES if wk.Plan(shape, 4, 1).tiles < 64 else (4,)


def _decide(shape: wk.Shape, target, threads: int) -> int:
    """The tile size m to run, or 0 for oneDNN."""
    if mode == "off":
        return 0
    if mode in ("F2", "F4"):
        _record((shape, str(target), threads, mode), shape, threads, {}, int(mode[1]), "forced")
        return int(mode[1])
    gemm = _gemm_in_use()
    key = (shape, str(target), threads, gemm)
    # The GEMM kernel is part of the key: a choice measured with at::matmul's
    # GEMMs (every database before the packed GEMM) says nothing about the other.
    db_key = _tuning.choice_key("conv2d_3x3", [shape.n, shape.h, shape.w, shape.c, shape.k,
                                               shape.pad_h, shape.pad_w, gemm], threads)
    with _lock:
        known = _decisions.get(key)
    if known is None:
        known = _tuning.lookup_choice(db_key)
        if known is not None and known.get("choice") in (0,) + TILES:
            with _lock:
                _decisions[key] = known
        else:
            known = None
    if known is not None:
        _tuning.note_choice(db_key, known)
        return known["choice"]
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((shape.k, 3, 3, shape.c)) / np.sqrt(9 * shape.c)).astype("float32")
    bias = rng.standard_normal(shape.k).astype("float32")
    x = tvm.runtime.tensor(rng.standard_normal((shape.n, shape.h, shape.w, shape.c))
                           .astype("float32"))
    fns, _owner = _candidates(shape, weight, bias, _tiles_worth_measuring(shape), target)
    names = list(fns)
    times = _best_of_interleaved([(fns[name], [x]) for name in names], rounds=5, per_round=3)
    by_name = dict(zip(names, times))
    best = min((name for name in names if name != "onednn"), key=by_name.get)
    choice = int(best[1:]) if by_name[best] < _MARGIN * by_name["onednn"] else 0
    _tuning.note_choice(db_key, _record(key, shape, threads, by_name, choice, "measured"))
    return choice


def _record(key, shape: wk.Shape, threads: int, times: dict, choice: int, source: str):
    with _lock:
        _decisions[key] = {"op": "conv2d_3x3", "shape": [shape.n, shape.h, shape.w, shape.c, shape.k],
                           "pad": [shape.pad_h, shape.pad_w], "threads": threads,
                           "times_us": times, "choice": choice, "source": source,
                           "kernel": f"winograd_F{choice}" if choice else "onednn"}
        return _decisions[key]


def _patterns():
    """(pattern, has_bias, has_residual, relu) for every fusable chain, largest first."""
    x, w, b, other = wildcard(), is_const(), is_const(), wildcard()
    conv = is_op("relax.nn.conv2d")(x, w)
    out = []
    for base, has_bias in ((is_op("relax.add")(conv, b), True), (conv, False)):
        added = is_op("relax.add")(base, other) | is_op("relax.add")(other, base)
        out.append((is_op("relax.nn.relu")(added), has_bias, True, True))
        out.append((added, has_bias, True, False))
        out.append((is_op("relax.nn.relu")(base), has_bias, False, True))
        out.append((base, has_bias, False, False))
    return x, w, b, other, conv, out


def _rewrite(add_func, func, target, threads):
    from ._offload import _fusable, _per_channel, _shape  # noqa: PLC0415 - import cycle

    x, w, b, other, conv, variants = _patterns()
    lanes = _lanes(target)
    for pattern, has_bias, has_residual, relu in variants:
        bindings = Bindings(func)

        def rewriter(orig, m, has_bias=has_bias, has_residual=has_residual, relu=relu,
                     bindings=bindings):
            if not _fusable(m, orig, bindings):
                return orig
            shape = eligible(m[conv], m[x])
            if shape is None:
                return orig
            bias = _per_channel(m[b], shape.k) if has_bias else None
            if has_bias and bias is None:
                return orig
            if has_residual and (_shape(m[other]) != [shape.n, shape.out_h, shape.out_w, shape.k]
                                 or str(m[other].ty.dtype) != "float32"):
                return orig
            if not np.isfinite(m[w].value.numpy()).all():
                return orig  # the transformed weight would spread it: oneDNN keeps eager's result
            tile = _decide(shape, target, threads)
            if not tile:
                return orig
            return build_call(add_func, bindings.operand(m[x]), m[w].value.numpy(),
                              relax.const(bias) if bias is not None else None,
                              bindings.operand(m[other]) if has_residual else None,
                              relu, plan_for(shape, tile, lanes))

        func = relax.dpl.rewrite_call(pattern, rewriter, func)
    return func


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.WinogradConvs")
def winograd_convs(mod, _ctx):
    if mode == "off":
        return mod
    target = tvm.target.Target.current()
    threads = int(target.attrs.get("num-cores", 1)) if target is not None else 1
    bb = relax.BlockBuilder(mod)
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            bb.update_func(gv, _rewrite(bb.add_func, func, target, threads))
    return bb.get()
