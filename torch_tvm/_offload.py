"""Relax pass: hand convolutions and matrix products to oneDNN kernels.

Runs after BN folding and the NHWC layout conversion. Each nn.conv2d with a
constant weight, plus what follows it when present (a constant bias add, then
a residual add (+relu), or one unary post-op: relu, sigmoid, tanh, silu, gelu,
or a clamp as hardtanh), becomes one call_pure_packed to torch_tvm.kernels.conv2d_nhwc /
conv2d_add_nhwc, with the weight prepacked now, once. A conv2d_nhwc whose input
another conv2d_nhwc wrote through a clamp becomes conv2d_nhwc_trusting
(_trust_clamped_inputs). matmul with a constant
weight becomes torch_tvm.kernels.linear (prepacked for the kernel that
_linear_choice measured faster for its shape); other matmuls go to
torch_tvm.kernels.matmul (PyTorch's BLAS). The kernels live in
csrc/kernels/onednn_kernels.cpp (convs) and linear_kernels.cpp.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.dpl import CallPattern, ExternFuncPattern, is_const, is_op, wildcard

from . import _linear_choice, _tvm_convs
from ._relax_uses import Bindings

CONV = "torch_tvm.kernels.conv2d_nhwc"
CONV_TRUSTING = "torch_tvm.kernels.conv2d_nhwc_trusting"

_prepack_conv = None
_prepack_linear = None
_can_trust = None


def _globals():
    global _prepack_conv, _prepack_linear, _can_trust
    if _prepack_conv is None:
        _prepack_conv = tvm_ffi.get_global_func("torch_tvm.kernels.conv2d_prepack")
        _prepack_linear = tvm_ffi.get_global_func("torch_tvm.kernels.linear_prepack")
        _can_trust = tvm_ffi.get_global_func("torch_tvm.kernels.conv2d_can_trust")


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


# Relax unary ops that oneDNN can apply as a post-op: relax op -> (attr, algorithm).
_UNARY = {
    "relax.nn.relu": ("relu", None),
    "relax.sigmoid": ("sigmoid", None),
    "relax.tanh": ("tanh", None),
    "relax.nn.silu": ("swish", None),
    "relax.nn.gelu": ("gelu", "none"),
    "relax.nn.gelu_tanh": ("gelu", "tanh"),
}


def _scalar(const):
    try:
        arr = const.value.numpy()
    except Exception:  # noqa: BLE001 - not a plain constant
        return None
    return float(arr) if arr.size == 1 else None


def _fusable(m, orig, bindings):
    """True when no matched call but the root is read outside the match.

    Fusing a value that something else also reads would leave its own call in
    place and compute it twice (MobileNetV2's `x + conv(x')`, where x is the
    previous block's conv output, would match with x's conv as the base).
    """
    for pattern, expr in m.items():
        if isinstance(pattern, CallPattern) and not expr.same_as(orig) \
                and bindings.uses(expr) != 1:
            return False
    return True


# oneDNN's relu and clip post-ops compute max(x, 0) / min(max(x, lo), hi)
# with vmaxps/vminps, which return the non-NaN operand: a NaN conv output came
# out 0 (or the bound) where eager's relu/clamp keep it. With keep_nan (the
# default) they are fused as "relu_keep_nan" / "hardtanh_keep_nan" instead:
# the kernel runs ATen's relu_/clamp_ on its output, in place, while it is
# still in cache (csrc/kernels/packed_weights.h, KeepNanEpilogue). sigmoid, tanh, swish and
# gelu propagate NaN as oneDNN post-ops.
NAN_DROPPING = frozenset({"relu", "hardtanh"})
keep_nan = True


def _nan_attr(attr):
    return attr + "_keep_nan" if keep_nan and attr in NAN_DROPPING else attr


def _either(op, a, b):
    return is_op(op)(a, b) | is_op(op)(b, a)


def _epilogues(base):
    """(pattern, epilogue) for every post-op the kernels can fuse, largest first.

    epilogue(m) returns (attr, scalars, algorithm) from the match, or None.
    """
    out = []
    for op_name, (attr, algo) in _UNARY.items():
        out.append((is_op(op_name)(base), lambda m, a=_nan_attr(attr), g=algo: (a, [], g)))
    # A clamp, as the converters emit it: the bound first when it keeps NaN.
    lo, hi = is_const(), is_const()
    clamp = _either("relax.minimum", _either("relax.maximum", base, lo), hi)

    def hardtanh(m, lo=lo, hi=hi):
        lo_v, hi_v = _scalar(m[lo]), _scalar(m[hi])
        if lo_v is None or hi_v is None or not lo_v <= hi_v:
            return None
        return (_nan_attr("hardtanh"), [lo_v, hi_v], None)

    out.append((clamp, hardtanh))
    out.append((base, lambda m: ("none", [], None)))
    return out


def _rewrite_convs(func, stats, threads):
    x, w, b, other = wildcard(), is_const(), is_const(), wildcard()
    conv = is_op("relax.nn.conv2d")(x, w)
    variants = []
    base_of = {True: is_op("relax.add")(conv, b), False: conv}
    for base, has_bias in ((base_of[True], True), (base_of[False], False)):
        added = is_op("relax.add")(base, other) | is_op("relax.add")(other, base)
        # After a residual add oneDNN can apply relu (Inductor's fusion too).
        variants.append((is_op("relax.nn.relu")(added), has_bias, True,
                         lambda m: (_nan_attr("relu"), [], None)))
        variants.append((added, has_bias, True, lambda m: ("none", [], None)))
        for pattern, epilogue in _epilogues(base):
            variants.append((pattern, has_bias, False, epilogue))

    for pattern, has_bias, has_residual, epilogue in variants:
        bindings = Bindings(func)

        def rewriter(orig, m, has_bias=has_bias, has_residual=has_residual, epilogue=epilogue,
                     bindings=bindings):
            if not _fusable(m, orig, bindings):
                return orig
            c = m[conv]
            attrs = c.attrs
            if (attrs.data_layout != "NHWC" or attrs.kernel_layout != "OHWI"
                    or attrs.out_layout != "NHWC" or _dtype(c) != "float32"
                    or _dtype(m[x]) != "float32"):
                return orig
            out_shape = _shape(c)
            bias = _per_channel(m[b], out_shape[-1]) if has_bias else None
            if has_bias and bias is None:
                return orig
            if has_residual and (_shape(m[other]) != out_shape or _dtype(m[other]) != "float32"):
                return orig
            post = epilogue(m)
            pad = _ints(attrs.padding)  # top, left, bottom, right
            if post is None or pad[0] != pad[2] or pad[1] != pad[3]:
                return orig
            sig = _tvm_convs.signature(c, m[x])
            chain = lambda: _tvm_convs._chain(func, m[base_of[has_bias]])  # noqa: E731
            if _tvm_convs.wants_tvm(sig, threads, c, chain):  # the tuned TVM kernel was faster
                _tvm_convs.record_left(sig, c, m[b] if has_bias else None, func,
                                       m[base_of[has_bias]])
                return orig
            unary, scalars, algorithm = post
            handle = _prepack_conv(m[w].value, bias, [pad[0], pad[1]], _ints(attrs.strides),
                                   _ints(attrs.dilation), int(attrs.groups), _shape(m[x]),
                                   unary, scalars, algorithm or "", has_residual)
            stats["conv2d"] += 1
            out_ty = relax.TensorType(out_shape, "float32")
            if has_residual:
                return relax.op.call_pure_packed("torch_tvm.kernels.conv2d_add_nhwc",
                                                 bindings.operand(m[x]),
                                                 bindings.operand(m[other]),
                                                 relax.prim_value(handle), ty_args=out_ty)
            return relax.op.call_pure_packed(CONV, bindings.operand(m[x]),
                                             relax.prim_value(handle), ty_args=out_ty)

        func = relax.dpl.rewrite_call(pattern, rewriter, func)
    return func


def _trust_clamped_inputs(func):
    """conv2d_nhwc(conv2d_nhwc(x, p), c) -> conv2d_nhwc_trusting(..., c) when p
    clamps to finite bounds that c's NanGuard admits (conv2d_can_trust).

    A relu/clamp that drops NaN as a oneDNN post-op runs fused only on inputs
    that cannot make a NaN or an infinity (csrc/kernels/dnnl/direct_conv.h).
    Scanning an input as large as the output costs more than the separate
    pass it saves, but when the input is the output of a conv that clamped it
    fused (so it holds no NaN and stays within the bound), the kernel knows it
    from that producer's call on the same thread (BoundedOutputs in
    onednn_kernels.cpp): MobileNetV2's depthwise convs after each expanding
    1x1 conv. The IR states which producer a consumer relies on; the kernel
    checks at run time that the producer ran fused.
    """
    producer = is_op("relax.call_pure_packed")(
        ExternFuncPattern(CONV) | ExternFuncPattern(CONV_TRUSTING), wildcard(), wildcard())
    consumer = is_op("relax.call_pure_packed")(ExternFuncPattern(CONV), producer, wildcard())

    def rewriter(orig, m):
        p = m[producer]
        if not _can_trust(int(p.args[2].value), int(orig.args[2].value)):
            return orig
        return relax.op.call_pure_packed(CONV_TRUSTING, orig.args[1], orig.args[2],
                                         ty_args=list(orig.ty_args))

    return relax.dpl.rewrite_call(consumer, rewriter, func)


def _rewrite_matmuls(func, stats):
    x, w, b = wildcard(), is_const(), is_const()
    mm = is_op("relax.matmul")(x, w)
    variants = []
    for base, has_bias in ((is_op("relax.add")(mm, b), True), (mm, False)):
        for pattern, epilogue in _epilogues(base):
            variants.append((pattern, has_bias, epilogue))

    for pattern, has_bias, epilogue in variants:
        bindings = Bindings(func)

        def rewriter(orig, m, has_bias=has_bias, epilogue=epilogue, bindings=bindings):
            if not _fusable(m, orig, bindings):
                return orig
            wt = m[w]
            wshape = [int(v) for v in wt.value.shape]
            xs = _shape(m[x])
            if len(wshape) != 2 or len(xs) < 2 or _dtype(m[x]) != "float32" or \
                    str(wt.value.dtype) != "float32":
                return orig
            bias = _per_channel(m[b], wshape[1]) if has_bias else None
            post = epilogue(m)
            if (has_bias and bias is None) or post is None:
                return orig
            unary, scalars, algorithm = post
            batch = 1
            for d in xs[:-1]:
                batch *= d
            post = (unary, scalars, algorithm or "")
            handle = _prepack_linear(wt.value, bias, batch, *post,
                                     _linear_choice.kernel_for(wt.value, bias, batch, post))
            stats["linear"] += 1
            return relax.op.call_pure_packed("torch_tvm.kernels.linear", bindings.operand(m[x]),
                                             relax.prim_value(handle),
                                             ty_args=relax.TensorType(_shape(orig), "float32"))

        func = relax.dpl.rewrite_call(pattern, rewriter, func)

    a, bb = wildcard(), wildcard()
    bindings = Bindings(func)

    def generic(orig, m):
        if _dtype(m[a]) != "float32" or _dtype(m[bb]) != "float32" or len(_shape(m[a])) < 2 \
                or len(_shape(m[bb])) < 2:
            return orig
        stats["matmul"] += 1
        return relax.op.call_pure_packed("torch_tvm.kernels.matmul", bindings.operand(m[a]),
                                         bindings.operand(m[bb]),
                                         ty_args=relax.TensorType(_shape(orig), "float32"))

    return relax.dpl.rewrite_call(is_op("relax.matmul")(a, bb), generic, func)


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.OffloadToOneDNN")
def offload_to_onednn(mod, _ctx):
    _globals()
    stats = {"conv2d": 0, "linear": 0, "matmul": 0}
    target = tvm.target.Target.current()
    threads = int(target.attrs.get("num-cores", 1)) if target is not None else 1
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            func = _rewrite_convs(func, stats, threads)
            func = _trust_clamped_inputs(func)
            func = _rewrite_matmuls(func, stats)
            mod[gv] = func
    return mod
