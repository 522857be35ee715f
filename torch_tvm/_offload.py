"""Relax pass: hand convolutions and matrix products to oneDNN kernels.

Runs after BN folding and the NHWC layout conversion. Each nn.conv2d with a
constant weight (plus a following constant bias add, residual add and relu,
when present) becomes one call_pure_packed to torch_tvm.kernels.conv2d_nhwc /
conv2d_add_nhwc, with the weight prepacked now, once. matmul with a constant
weight becomes torch_tvm.kernels.linear (prepacked); other matmuls go to
torch_tvm.kernels.matmul (PyTorch's BLAS). The kernels live in
csrc/kernels/onednn_kernels.cpp.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import is_const, is_op, wildcard

_prepack_conv = None
_prepack_linear = None


def _globals():
    global _prepack_conv, _prepack_linear
    if _prepack_conv is None:
        _prepack_conv = tvm_ffi.get_global_func("torch_tvm.kernels.conv2d_prepack")
        _prepack_linear = tvm_ffi.get_global_func("torch_tvm.kernels.linear_prepack")


def _shape(expr):
    return [int(v) for v in expr.ty.shape.values]


def _dtype(expr):
    return str(expr.ty.dtype)


def _ints(arr):
    return [int(v) for v in arr]


def _per_channel(const, channels):
    """The bias vector of a constant that broadcasts along the last axis, or None."""
    shape = [int(v) for v in const.value.shape]
    if not shape or shape[-1] != channels or any(d != 1 for d in shape[:-1]):
        return None
    return tvm.runtime.tensor(const.value.numpy().reshape(channels))


class _ConvPatterns:
    def __init__(self):
        self.x = wildcard()
        self.w = is_const()
        self.b = is_const()
        self.other = wildcard()
        self.conv = is_op("relax.nn.conv2d")(self.x, self.w)
        self.biased = is_op("relax.add")(self.conv, self.b)

    def variants(self):
        """(pattern, has_bias, has_residual, has_relu), largest first."""
        out = []
        for base, has_bias in ((self.biased, True), (self.conv, False)):
            added = is_op("relax.add")(base, self.other) | is_op("relax.add")(self.other, base)
            out.append((is_op("relax.nn.relu")(added), has_bias, True, True))
            out.append((added, has_bias, True, False))
            out.append((is_op("relax.nn.relu")(base), has_bias, False, True))
            out.append((base, has_bias, False, False))
        return out


def _rewrite_convs(func, stats):
    p = _ConvPatterns()
    for pattern, has_bias, has_residual, has_relu in p.variants():
        def rewriter(orig, m, has_bias=has_bias, has_residual=has_residual, has_relu=has_relu):
            conv = m[p.conv]
            attrs = conv.attrs
            if (attrs.data_layout != "NHWC" or attrs.kernel_layout != "OHWI"
                    or attrs.out_layout != "NHWC" or _dtype(conv) != "float32"
                    or _dtype(m[p.x]) != "float32"):
                return orig
            out_shape = _shape(conv)
            bias = None
            if has_bias:
                bias = _per_channel(m[p.b], out_shape[-1])
                if bias is None:
                    return orig
            other = None
            if has_residual:
                other = m[p.other]
                if _shape(other) != out_shape or _dtype(other) != "float32":
                    return orig
            pad = _ints(attrs.padding)  # top, left, bottom, right
            if pad[0] != pad[2] or pad[1] != pad[3]:
                return orig
            handle = _prepack_conv(m[p.w].value, bias, [pad[0], pad[1]], _ints(attrs.strides),
                                   _ints(attrs.dilation), int(attrs.groups), _shape(m[p.x]),
                                   "relu" if has_relu else "none")
            stats["conv2d"] += 1
            out_ty = relax.TensorType(out_shape, "float32")
            if has_residual:
                return relax.op.call_pure_packed("torch_tvm.kernels.conv2d_add_nhwc", m[p.x], other,
                                                 relax.prim_value(handle), ty_args=out_ty)
            return relax.op.call_pure_packed("torch_tvm.kernels.conv2d_nhwc", m[p.x],
                                             relax.prim_value(handle), ty_args=out_ty)

        func = relax.dpl.rewrite_call(pattern, rewriter, func)
    return func


def _rewrite_matmuls(func, stats):
    x, w, b = wildcard(), is_const(), is_const()
    mm = is_op("relax.matmul")(x, w)
    biased = is_op("relax.add")(mm, b)
    for pattern, has_bias, has_relu in ((is_op("relax.nn.relu")(biased), True, True),
                                        (biased, True, False), (is_op("relax.nn.relu")(mm), False, True),
                                        (mm, False, False)):
        def rewriter(orig, m, has_bias=has_bias, has_relu=has_relu):
            wt = m[w]
            wshape = [int(v) for v in wt.value.shape]
            xs = _shape(m[x])
            if len(wshape) != 2 or len(xs) < 2 or _dtype(m[x]) != "float32" or \
                    str(wt.value.dtype) != "float32":
                return orig
            bias = _per_channel(m[b], wshape[1]) if has_bias else None
            if has_bias and bias is None:
                return orig
            batch = 1
            for d in xs[:-1]:
                batch *= d
            handle = _prepack_linear(wt.value, bias, batch, "relu" if has_relu else "none")
            stats["linear"] += 1
            return relax.op.call_pure_packed("torch_tvm.kernels.linear", m[x],
                                             relax.prim_value(handle),
                                             ty_args=relax.TensorType(_shape(orig), "float32"))

        func = relax.dpl.rewrite_call(pattern, rewriter, func)

    a, bb = wildcard(), wildcard()

    def generic(orig, m):
        if _dtype(m[a]) != "float32" or _dtype(m[bb]) != "float32" or len(_shape(m[a])) < 2 \
                or len(_shape(m[bb])) < 2:
            return orig
        stats["matmul"] += 1
        return relax.op.call_pure_packed("torch_tvm.kernels.matmul", m[a], m[bb],
                                         ty_args=relax.TensorType(_shape(orig), "float32"))

    return relax.dpl.rewrite_call(is_op("relax.matmul")(a, bb), generic, func)


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.OffloadToOneDNN")
def offload_to_onednn(mod, _ctx):
    _globals()
    stats = {"conv2d": 0, "linear": 0, "matmul": 0}
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            func = _rewrite_convs(func, stats)
            func = _rewrite_matmuls(func, stats)
            mod[gv] = func
    return mod
