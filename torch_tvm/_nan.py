"""Legalisation rules that keep NaN where eager PyTorch keeps it.

TVM's float max and min lower to a compare-select, `a > b ? a : b`, which
returns b when a is NaN. So TOPI's relu (max(x, 0)), maximum/minimum with
the NaN on the left (clamp, relu6, hardtanh, hardsigmoid) and max pooling (a
running max) turned a NaN into a number: a silently different result from
eager, where relu(nan), clamp(nan), maximum(nan, y) and a pool window holding
a NaN are all NaN. The rules here write those ops in TE with a NaN check:
  - relu(x) = x < 0 ? 0 : x       (no extra instruction: NaN < 0 is false;
                                   relu(-0.0) stays -0.0, as ATen's maxps gives)
  - maximum(a, b) = (a > b or a is NaN) ? a : b   (NaN from either side)
  - minimum(a, b) = (a < b or a is NaN) ? a : b
  - max_pool2d: the window max with the same NaN-keeping combiner.
Only floating dtypes are rewritten; integer ops keep TVM's lowering.
"""
from __future__ import annotations

from tvm import te, tirx

from . import _fastmath as fm


def float_result(call) -> bool:
    """Whether the op call produces a floating (or bfloat) tensor."""
    ty = call.ty
    return str(getattr(ty, "dtype", "")).startswith(("float", "bfloat"))


def nan_max(a, b):
    return tirx.Select(tirx.Or(a > b, fm.isnan(a)), a, b)


def nan_min(a, b):
    return tirx.Select(tirx.Or(a < b, fm.isnan(a)), a, b)


def neg_inf(dtype):
    return tirx.const(float("-inf"), dtype)


NAN_MAX = te.comm_reducer(nan_max, neg_inf, name="nan_keeping_max")


def _relu_rule(bb, call):
    if not float_result(call):
        return None

    def te_fn(x):
        zero = tirx.const(0.0, x.dtype)
        return te.compute(x.shape, lambda *i: tirx.Select(x(*i) < zero, zero, x(*i)),
                          name="T_relu")
    return bb.call_te(te_fn, call.args[0], primfunc_name_hint="relu")


def _broadcast_read(t, out_ndim):
    """Index a tensor broadcast to an output of `out_ndim` axes (numpy rules)."""
    lead = out_ndim - len(t.shape)

    def read(*i):
        idx = [tirx.const(0, "int64") if _is_one(d) else i[lead + k]
               for k, d in enumerate(t.shape)]
        return t(*idx)
    return read


def _is_one(dim) -> bool:
    return isinstance(dim, tirx.IntImm) and int(dim) == 1


def _binary_rule(combine, name):
    def rule(bb, call):
        if not float_result(call) or call.ty.shape is None:
            return None
        # With a scalar operand (clamp's bounds) the converter already puts
        # the constant first, where TVM's select keeps the tensor's NaN; and
        # this TE form of it was not vectorised (10x slower, kernel benchmark).
        if any(len(a.ty.shape.values) == 0 for a in call.args if a.ty.shape is not None):
            return None
        out_shape = list(call.ty.shape.values)

        def te_fn(a, b):
            ra, rb = _broadcast_read(a, len(out_shape)), _broadcast_read(b, len(out_shape))
            return te.compute(out_shape, lambda *i: combine(ra(*i), rb(*i)), name="T_" + name)
        return bb.call_te(te_fn, call.args[0], call.args[1], primfunc_name_hint=name)
    return rule


def _max_pool2d_rule(bb, call):
    attrs = call.attrs
    layout = str(attrs.layout)
    if not float_result(call) or layout not in ("NCHW", "NHWC") or str(attrs.out_layout) != layout \
            or call.ty.shape is None:
        return None
    kh, kw = (int(v) for v in attrs.pool_size)
    sh, sw = (int(v) for v in attrs.strides)
    dh, dw = (int(v) for v in attrs.dilation)
    top, left = int(attrs.padding[0]), int(attrs.padding[1])
    out_shape = list(call.ty.shape.values)
    h_axis, w_axis = layout.index("H"), layout.index("W")

    def te_fn(x):
        height, width = x.shape[h_axis], x.shape[w_axis]
        rh = te.reduce_axis((0, kh), name="rh")
        rw = te.reduce_axis((0, kw), name="rw")
        low = neg_inf(x.dtype)

        def body(*i):
            h = i[h_axis] * sh + rh * dh - top
            w = i[w_axis] * sw + rw * dw - left
            idx = list(i)
            if dh == 1 and dw == 1:
                # Every window holds at least one input element (torch checks
                # padding <= kernel / 2), and its input positions are one
                # contiguous run, so a padded position clamped to the nearest
                # edge reads an element of the same window: a duplicate, which
                # changes neither the max nor a NaN. No per-element bounds
                # test is left in the vector loop (NHWC: 0.22 -> 0.07 ms).
                idx[h_axis] = tirx.max(tirx.min(h, height - 1), 0)
                idx[w_axis] = tirx.max(tirx.min(w, width - 1), 0)
                return NAN_MAX(x(*idx), axis=[rh, rw])
            idx[h_axis], idx[w_axis] = h, w
            inside = tirx.all(h >= 0, h < height, w >= 0, w < width)
            # A padded position never wins: -inf, as eager pads (ceil_mode
            # windows past the input end read padding too).
            value = tirx.if_then_else(inside, x(*idx), low)
            return NAN_MAX(value, axis=[rh, rw])
        return te.compute(out_shape, body, name="T_pool_max")
    return bb.call_te(te_fn, call.args[0], primfunc_name_hint="max_pool2d")


def nan_rules() -> dict:
    return {
        "relax.nn.relu": _relu_rule,
        "relax.maximum": _binary_rule(nan_max, "maximum"),
        "relax.minimum": _binary_rule(nan_min, "minimum"),
        "relax.nn.max_pool2d": _max_pool2d_rule,
    }
