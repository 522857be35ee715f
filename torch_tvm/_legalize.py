"""Legalisation of the Relax ops whose TVM default lowering is slow on CPU.

LegalizeOps turns each Relax op into a TE PrimFunc. For the ops below TVM's
defaults use intrinsics that never vectorise (exp, tanh, erf, log, sigmoid
become one libm call per lane, rsqrt and erf scalarise their whole loop).
Here the same ops are written in TE with the arithmetic-only float32
functions of `_fastmath`, and the norms and softmax are written so that the
reduction schedules of `_schedule` can vectorise them:
  - softmax / log_softmax: row max, exp(x - max) once, row sum, one scale;
  - layer_norm / group_norm / rms_norm: two-pass mean and variance (the
    deviation sum, as accurate as Welford), 1/sqrt instead of rsqrt.
Non-float32 tensors keep TVM's own legalisation.
"""
from __future__ import annotations

import functools
import math

import tvm
from tvm import relax, te, tirx

from . import _fastmath as fm
from ._concat import concat_rule
from ._nan import NAN_MAX, float_result, nan_rules, neg_inf


def _is_f32(call) -> bool:
    ty = call.args[0].ty
    return isinstance(ty, relax.TensorType) and str(ty.dtype) == "float32"


def _elementwise(fn, name):
    def te_fn(x):
        return te.compute(x.shape, lambda *i: fn(x(*i)), name=name)
    return te_fn


@functools.lru_cache(maxsize=1)
def _eager_gelu_at_inf() -> tuple[float, float]:
    """Eager gelu(+inf) and gelu(-inf) on this host. They depend on the CPU:
    ATen's vectorised erf gives gelu(+inf) = NaN with AVX-512 and inf with
    AVX2 (gelu(-inf) is -inf * 0 = NaN in both)."""
    import torch  # noqa: PLC0415 - only when a gelu is legalised

    x = torch.zeros(64)
    x[0], x[1] = float("inf"), float("-inf")
    y = torch.nn.functional.gelu(x)
    return float(y[0]), float(y[1])


def _gelu(v):
    pos, neg = _eager_gelu_at_inf()

    def body(v):
        y = v * (tirx.const(0.5, "float32") + tirx.const(0.5, "float32")
                 * fm.erf(v * tirx.const(math.sqrt(0.5), "float32")))
        inf = tirx.const(float("inf"), "float32")
        return tirx.Select(v == inf, tirx.const(pos, "float32"),
                           tirx.Select(v == -inf, tirx.const(neg, "float32"), y))
    return fm.let(v, body)


def _gelu_tanh(v):
    c = tirx.const(math.sqrt(2.0 / math.pi), "float32")

    def body(v):
        inner = c * (v + tirx.const(0.044715, "float32") * v * v * v)
        return tirx.const(0.5, "float32") * v * (tirx.const(1.0, "float32") + fm.tanh(inner))
    return fm.let(v, body)


def _log1p_of_positive(u):
    """log(1 + u) for u >= 0, accurate for tiny u (Goldberg: log(w) * u / (w - 1))."""
    def body(u):
        def with_w(w):
            return fm.let(w - tirx.const(1.0, "float32"), lambda d: tirx.Select(
                d == tirx.const(0.0, "float32"), u, fm.log(w) * (u / d)))
        return fm.let(u + tirx.const(1.0, "float32"), with_w)
    return fm.let(u, body)


def _softplus(beta, threshold):
    def fn(v):
        def body(v):
            def with_bx(bx):
                soft = _log1p_of_positive(fm.exp(bx)) / tirx.const(beta, "float32")
                return tirx.Select(bx > tirx.const(threshold, "float32"), v, soft)
            return fm.let(v * tirx.const(beta, "float32"), with_bx)
        return fm.let(v, body)
    return fn


# Relax op -> float32 elementwise function of one PrimExpr.
_UNARY = {
    "relax.exp": (fm.exp, "exp"),
    "relax.log": (fm.log, "log"),
    "relax.tanh": (fm.tanh, "tanh"),
    "relax.sigmoid": (fm.sigmoid, "sigmoid"),
    "relax.erf": (fm.erf, "erf"),
    "relax.rsqrt": (lambda v: tirx.const(1.0, "float32") / tirx.sqrt(v), "rsqrt"),
    "relax.nn.silu": (lambda v: fm.let(v, lambda v: v * fm.sigmoid(v)), "silu"),
    "relax.nn.gelu": (_gelu, "gelu"),
    "relax.nn.gelu_tanh": (_gelu_tanh, "gelu_tanh"),
}


def _unary_rule(fn, name):
    def rule(bb, call):
        if not _is_f32(call):
            return None
        return bb.call_te(_elementwise(fn, "T_" + name), call.args[0], primfunc_name_hint=name)
    return rule


def _softplus_rule(bb, call):
    if not _is_f32(call):
        return None
    fn = _softplus(float(call.attrs.beta), float(call.attrs.threshold))
    return bb.call_te(_elementwise(fn, "T_softplus"), call.args[0], primfunc_name_hint="softplus")


# Reductions read their rows through a flat (rows..., length) view of the
# input (a Relax reshape; the pipeline turns it into a no-copy view before
# FuseOps), so that the reduced elements are one contiguous index: the
# multi-level div/mod of a fused index is not simplified away and would turn
# every vector load into 16 scalar loads. Each reduction is split into a body
# whose length is a multiple of 16 (any vector width divides it:
# _schedule_reduction vectorises it with rfactor) and a short tail.
_BODY_MULTIPLE = 16
_I64 = "int64"


def _i64(v):
    return tirx.const(v, _I64)


def _shape(expr):
    return [int(d) for d in expr.ty.shape]


def _flat_view(bb, x, lead):
    """x reshaped to (x.shape[:lead]..., product of the rest)."""
    shape = _shape(x)
    if len(shape) == lead + 1:
        return x
    length = 1
    for d in shape[lead:]:
        length *= d
    return bb.emit(relax.op.reshape(x, shape[:lead] + [length]))




def _flat_reduce(rows, length, value, kind, name):
    """te.compute over `rows` of the sum / max over k in [0, length) of value(row, k).
    The max is TIR's (rfactor knows only the registered reducers): it may
    drop a NaN; `_keep_nan` puts it back where torch's semantics need it."""
    te_op = te.sum if kind == "sum" else te.max
    body_len = length - length % _BODY_MULTIPLE

    def part(lo, hi, suffix):
        def body(*i):
            k = te.reduce_axis((_i64(0), _i64(hi - lo)), name="k")
            return te_op(value(i, k + _i64(lo) if lo else k), axis=k)
        return te.compute(rows, body, name=name + suffix)

    if body_len in (0, length):
        return part(0, length, "")
    main, tail = part(0, body_len, "_body"), part(body_len, length, "_tail")
    if kind == "sum":
        return te.compute(rows, lambda *i: main(*i) + tail(*i), name=name)
    return te.compute(rows, lambda *i: tirx.max(main(*i), tail(*i)), name=name)


def _keep_nan(r, rows, length, value):
    """r (a max) made NaN on rows with a NaN (the sum of a row's NaNs is NaN)."""
    nans = _flat_reduce(rows, length, lambda i, k: fm.let(
        value(i, k), lambda v: tirx.Select(fm.isnan(v), v, tirx.const(0.0, "float32"))),
        "sum", "T_nan")
    return te.compute(rows, lambda *i: tirx.Select(fm.isnan(nans(*i)), nans(*i), r(*i)),
                      name="T_max_nan")


def _moments(xf, rows, length, name):
    """Row sum and sum of squared deviations (two passes: as accurate as
    Welford, and both passes vectorise)."""
    inv_n = tirx.const(1.0 / length, "float32")
    total = _flat_reduce(rows, length, lambda i, k: xf(*i, k), "sum", name + "_sum")

    def dev2(i, k):
        d = xf(*i, k) - total(*i) * inv_n
        return d * d
    var = _flat_reduce(rows, length, dev2, "sum", name + "_var")
    return total, var, inv_n


def _inv_std(var, rows, inv_n, eps, name):
    return te.compute(rows, lambda *i: tirx.const(1.0, "float32")
                      / tirx.sqrt(var(*i) * inv_n + tirx.const(eps, "float32")), name=name)


def _te_softmax(x, log):
    """softmax / log_softmax over the last axis."""
    rows, length = list(x.shape[:-1]), int(x.shape[-1])
    mx = _flat_reduce(rows, length, lambda i, k: x(*i, k), "max", "T_softmax_max")
    e = te.compute(x.shape, lambda *i: fm.exp(x(*i) - mx(*i[:-1])), name="T_softmax_exp")
    s = _flat_reduce(rows, length, lambda i, k: e(*i, k), "sum", "T_softmax_sum")
    if log:
        return te.compute(x.shape, lambda *i: x(*i) - mx(*i[:-1]) - fm.log(s(*i[:-1])),
                          name="T_log_softmax")
    inv = te.compute(rows, lambda *i: tirx.const(1.0, "float32") / s(*i), name="T_softmax_inv")
    return te.compute(x.shape, lambda *i: e(*i) * inv(*i[:-1]), name="T_softmax")


def _softmax_rule(log):
    def rule(bb, call):
        nd = len(call.args[0].ty.shape) if _is_f32(call) else 0
        if not nd or int(call.attrs.axis) % nd != nd - 1:
            return None
        return bb.call_te(lambda x: _te_softmax(x, log), call.args[0],
                          primfunc_name_hint="log_softmax" if log else "softmax")
    return rule


def _trailing_axes(call, axes):
    nd = len(call.args[0].ty.shape)
    norm = sorted(int(a) % nd for a in axes)
    return nd - len(norm) if norm == list(range(nd - len(norm), nd)) else None


def _te_layer_norm(xf, x, gamma, beta, lead, eps, rms):
    """Normalise over x's trailing axes (torch's layer_norm / rms_norm);
    statistics from the flat view xf, output in x's shape."""
    rows, length = list(xf.shape[:-1]), int(xf.shape[-1])
    if rms:
        sq = _flat_reduce(rows, length, lambda i, k: xf(*i, k) * xf(*i, k), "sum", "T_rms_sq")
        scale = _inv_std(sq, rows, tirx.const(1.0 / length, "float32"), eps, "T_rms_scale")
        return te.compute(x.shape, lambda *i: x(*i) * scale(*i[:lead]) * gamma(*i[lead:]),
                          name="T_rms_norm")
    total, var, inv_n = _moments(xf, rows, length, "T_ln")
    scale = _inv_std(var, rows, inv_n, eps, "T_ln_scale")
    return te.compute(x.shape, lambda *i: (x(*i) - total(*i[:lead]) * inv_n) * scale(*i[:lead])
                      * gamma(*i[lead:]) + beta(*i[lead:]), name="T_layer_norm")


def _norm_rule(rms):
    def rule(bb, call):
        lead = _trailing_axes(call, call.attrs.axes) if _is_f32(call) else None
        if lead is None:
            return None
        x = call.args[0]
        xf = _flat_view(bb, x, lead)
        eps = float(call.attrs.epsilon)
        if rms:
            return bb.call_te(lambda a, b, g: _te_layer_norm(a, b, g, None, lead, eps, True),
                              xf, x, call.args[1], primfunc_name_hint="rms_norm")
        return bb.call_te(lambda a, b, g, be: _te_layer_norm(a, b, g, be, lead, eps, False),
                          xf, x, call.args[1], call.args[2], primfunc_name_hint="layer_norm")
    return rule


def _te_group_norm(xf, x, gamma, beta, eps):
    """x: (N, C, *spatial); xf: its (N, G, C/G * spatial) view. Statistics per
    (n, group) from xf, output per channel."""
    rows, length = list(xf.shape[:-1]), int(xf.shape[-1])
    cg = int(x.shape[1]) // int(xf.shape[1])
    total, var, inv_n = _moments(xf, rows, length, "T_gn")
    scale = _inv_std(var, rows, inv_n, eps, "T_gn_scale")

    def out(n, ch, *sp):
        g = tirx.floordiv(ch, _i64(cg))
        return (x(n, ch, *sp) - total(n, g) * inv_n) * scale(n, g) * gamma(ch) + beta(ch)
    return te.compute(x.shape, out, name="T_group_norm")


def _te_group_norm_last(xv, x, gamma, beta, eps):
    """Channels last, (N, *spatial, C), as ConvertLayout leaves it between NHWC
    convolutions. xv is x viewed as (N, positions, G, C/G); statistics per
    (n, group) over positions and the group's channels. With one group xv is
    (N, 1, positions * C): one contiguous row, vectorised like a layer norm."""
    rows = [xv.shape[0], xv.shape[2]] if len(xv.shape) == 4 else list(xv.shape[:-1])
    c = int(x.shape[-1])
    groups = int(rows[1])
    cg = c // groups
    if len(xv.shape) == 3:
        total, var, inv_n = _moments(xv, rows, int(xv.shape[-1]), "T_gn")
    else:
        count = int(xv.shape[1]) * cg
        inv_n = tirx.const(1.0 / count, "float32")

        def reduce(value, name):
            def body(n, g):
                p = te.reduce_axis((_i64(0), xv.shape[1]), name="p")
                k = te.reduce_axis((_i64(0), xv.shape[3]), name="k")
                return te.sum(value(n, p, g, k), axis=[p, k])
            return te.compute(rows, body, name=name)
        total = reduce(lambda n, p, g, k: xv(n, p, g, k), "T_gn_sum")

        def dev2(n, p, g, k):
            d = xv(n, p, g, k) - total(n, g) * inv_n
            return d * d
        var = reduce(dev2, "T_gn_var")
    scale = _inv_std(var, rows, inv_n, eps, "T_gn_scale")

    def out(n, *rest):
        ch = rest[-1]
        g = tirx.floordiv(ch, _i64(cg))
        return (x(n, *rest) - total(n, g) * inv_n) * scale(n, g) * gamma(ch) + beta(ch)
    return te.compute(x.shape, out, name="T_group_norm")


def _group_norm_rule(bb, call):
    if not _is_f32(call):
        return None
    x = call.args[0]
    shape = _shape(x)
    nd = len(shape)
    axes = [int(a) % nd for a in call.attrs.axes]
    channel = int(call.attrs.channel_axis) % nd
    groups = int(call.attrs.num_groups)
    eps = float(call.attrs.epsilon)
    if channel == nd - 1 and axes == list(range(1, nd - 1)) and nd >= 3:
        positions = 1
        for d in shape[1:-1]:
            positions *= d
        view = [shape[0], 1, positions * shape[-1]] if groups == 1 else \
            [shape[0], positions, groups, shape[-1] // groups]
        xv = bb.emit(relax.op.reshape(x, view))
        return bb.call_te(lambda a, b, g, be: _te_group_norm_last(a, b, g, be, eps), xv, x,
                          call.args[1], call.args[2], primfunc_name_hint="group_norm")
    if channel != 1 or axes != list(range(2, nd)):
        return None
    length = shape[1] // groups
    for d in shape[2:]:
        length *= d
    xf = bb.emit(relax.op.reshape(x, [shape[0], groups, length]))
    return bb.call_te(lambda a, b, g, be: _te_group_norm(a, b, g, be, eps), xf, x,
                      call.args[1], call.args[2], primfunc_name_hint="group_norm")


def _te_reduce_axes(a, axes, kind, mean, keep):
    """sum / mean / max of `a` over arbitrary `axes` (not a trailing run)."""
    nd = len(a.shape)
    count = 1
    for ax in axes:
        count *= int(a.shape[ax])
    # NaN-keeping (TIR's max drops a NaN), with -inf as its identity.
    te_op = te.sum if kind == "sum" else NAN_MAX
    out_shape = [1 if i in axes else d for i, d in enumerate(a.shape)] if keep else \
        [d for i, d in enumerate(a.shape) if i not in axes]

    def body(*i):
        ks = {ax: te.reduce_axis((_i64(0), a.shape[ax]), name=f"k{ax}") for ax in axes}
        it = iter(i)
        idx = []
        for ax in range(nd):
            if ax in axes:
                idx.append(ks[ax])
                if keep:
                    next(it)
            else:
                idx.append(next(it))
        return te_op(a(*idx), axis=[ks[ax] for ax in axes])
    r = te.compute(out_shape, body, name="T_reduce")
    if not mean:
        return r
    return te.compute(out_shape, lambda *i: r(*i) * tirx.const(1.0 / count, "float32"),
                      name="T_mean")


# Block name of a column reduction; _schedule_reduction gives it its own schedule.
COLUMN_REDUCE = "T_colreduce"


def _column_reduce(bb, x, axes, mean, call):
    """A sum / mean over a run of middle axes (a spatial mean of an NHWC
    tensor): x viewed as (outer, length, inner), reduced over the middle, so
    that the inner axis stays contiguous and is vectorised across."""
    shape = _shape(x)
    outer = math.prod(shape[:axes[0]])
    length = math.prod(shape[a] for a in axes)
    inner = math.prod(shape[axes[-1] + 1:])
    x3 = bb.emit(relax.op.reshape(x, [outer, length, inner]))
    scale = tirx.const(1.0 / length, "float32")

    def te_fn(a):
        k = te.reduce_axis((_i64(0), _i64(length)), name="k")
        r = te.compute((_i64(outer), _i64(inner)), lambda o, i: te.sum(a[o, k, i], axis=k),
                       name=COLUMN_REDUCE)
        if not mean:
            return r
        return te.compute(r.shape, lambda o, i: r[o, i] * scale, name="T_mean")
    flat = bb.emit(bb.call_te(te_fn, x3, primfunc_name_hint="mean" if mean else "sum"))
    out_shape = [int(d) for d in call.ty.shape.values]
    return flat if out_shape == [outer, inner] else relax.op.reshape(flat, out_shape)


def _reduce_rule(kind, mean):
    """sum / mean / max: over trailing axes through the flat view, else
    directly; max keeps NaN like torch, and has -inf as identity, in every
    float dtype."""
    def rule(bb, call):
        x = call.args[0]
        f32 = _is_f32(call)
        if not f32 and (kind != "max" or not float_result(call)):
            return None
        nd = len(_shape(x))
        axes = sorted(int(a) % nd for a in (call.attrs.axis or range(nd)))
        keep = bool(call.attrs.keepdims)
        if not f32:
            # Other float dtypes: TVM's max has the lowest finite value as
            # identity (a row of -inf gave -1.8e308) and drops NaN.
            return bb.call_te(lambda a: _te_reduce_axes(a, axes, "max", False, keep), x,
                              primfunc_name_hint="max")
        lead = _trailing_axes(call, axes)
        if lead is None and kind == "sum" and axes == list(range(axes[0], axes[-1] + 1)):
            return _column_reduce(bb, x, axes, mean, call)
        if lead is None:
            return bb.call_te(lambda a: _te_reduce_axes(a, axes, kind, mean, keep), x,
                              primfunc_name_hint="mean" if mean else kind)
        xf = _flat_view(bb, x, lead)

        def te_fn(a):
            rows, length = list(a.shape[:-1]), int(a.shape[-1])
            r = _flat_reduce(rows, length, lambda i, k: a(*i, k), kind, "T_reduce")
            if kind == "max":
                r = _keep_nan(r, rows, length, lambda i, k: a(*i, k))
            scale = tirx.const(1.0 / length, "float32")
            out_shape = rows + [1] * (nd - lead) if keep else rows
            return te.compute(out_shape, lambda *i: r(*i[:lead]) * scale if mean
                              else r(*i[:lead]), name="T_" + ("mean" if mean else kind))
        return bb.call_te(te_fn, xf, primfunc_name_hint="mean" if mean else kind)
    return rule


def _argmax_combine(x, y):
    """(index, value) pairs: the larger value, a NaN over any number, and the
    first index among equals (torch.max(dim) / argmax semantics)."""
    (ia, va), (ib, vb) = x, y
    nan_a, nan_b = fm.isnan(va), fm.isnan(vb)
    take_b = tirx.Or(tirx.Or(tirx.And(vb > va, tirx.Not(nan_a)), tirx.And(nan_b, tirx.Not(nan_a))),
                     tirx.And(tirx.Or(vb == va, tirx.And(nan_a, nan_b)), ib < ia))
    return tirx.Select(take_b, ib, ia), tirx.Select(take_b, vb, va)


_ARGMAX = te.comm_reducer(
    _argmax_combine,
    # -inf, not the lowest finite float: in a row of -inf the first index wins.
    lambda ti, tv: (tirx.max_value(ti), neg_inf(tv)), name="argmax_keeping_nan")


def _argmax_rule(bb, call):
    ty = call.args[0].ty
    if call.attrs.axis is None or not str(getattr(ty, "dtype", "")).startswith("float"):
        return None  # integers: TVM's argmax (no NaN, and its ties take the first index)
    x = call.args[0]
    nd = len(_shape(x))
    axis = int(call.attrs.axis) % nd
    keep = bool(call.attrs.keepdims)

    def te_fn(a):
        out_shape = [d if i != axis else 1 for i, d in enumerate(a.shape)] if keep else \
            [d for i, d in enumerate(a.shape) if i != axis]

        def body(*i):
            k = te.reduce_axis((_i64(0), a.shape[axis]), name="k")
            idx = list(i)
            if keep:
                idx[axis] = k
            else:
                idx.insert(axis, k)
            return _ARGMAX((k, a(*idx)), axis=k)
        index, _ = te.compute(out_shape, body, name="T_argmax")
        return index
    return bb.call_te(te_fn, x, primfunc_name_hint="argmax")


def _with_default(rule, op_name):
    """Fall back to TVM's registered legalisation when `rule` declines."""
    default = None

    def wrapped(bb, call):
        nonlocal default
        out = rule(bb, call)
        if out is not None:
            return out
        if default is None:
            default = tvm.ir.Op.get(op_name).get_attr("FLegalize")
        return default(bb, call)
    return wrapped


def legalize_map() -> dict:
    rules = {op: _unary_rule(fn, name) for op, (fn, name) in _UNARY.items()}
    rules["relax.nn.softplus"] = _softplus_rule
    rules["relax.nn.softmax"] = _softmax_rule(log=False)
    rules["relax.nn.log_softmax"] = _softmax_rule(log=True)
    rules["relax.nn.layer_norm"] = _norm_rule(rms=False)
    rules["relax.nn.rms_norm"] = _norm_rule(rms=True)
    rules["relax.nn.group_norm"] = _group_norm_rule
    rules["relax.sum"] = _reduce_rule("sum", mean=False)
    rules["relax.mean"] = _reduce_rule("sum", mean=True)
    rules["relax.max"] = _reduce_rule("max", mean=False)
    rules["relax.argmax"] = _argmax_rule
    rules["relax.concat"] = concat_rule
    rules.update(nan_rules())
    return {op: _with_default(rule, op) for op, rule in rules.items()}


def nan_only_legalize_ops():
    """opt_level 0: TVM's own lowering, except the ops that would drop a NaN
    (relu, maximum/minimum, max pooling, the max reduction) or pick another
    index than eager's argmax on ties and NaN."""
    rules = dict(nan_rules())
    rules["relax.max"] = _reduce_rule("max", mean=False)
    rules["relax.argmax"] = _argmax_rule
    return relax.transform.LegalizeOps(
        customize_legalize_map={op: _with_default(rule, op) for op, rule in rules.items()})


def legalize_ops():
    """LegalizeOps with the rules above, then reshapes as no-copy views (so
    the flat row views stay views instead of being fused as index math)."""
    return tvm.transform.Sequential([
        relax.transform.LegalizeOps(customize_legalize_map=legalize_map()),
        relax.transform.RewriteDataflowReshape(),
    ])
