"""Relax pass: sink layout permutes through layout-agnostic ops until they cancel.

A channels-last input reaches the Relax function as its NHWC view followed by
`permute_dims(x, [0, 3, 1, 2])`, and an output that eager produces channels-last
leaves through `permute_dims(y, [0, 2, 3, 1])` (csrc/convert/graph_converter.cpp).
ConvertLayout adds its own pair around every NHWC conv. Left alone each permute
is a transposing copy. This pass moves a permute below the ops that do not care
about the layout, so that the ops run on the original (NHWC) data, and composes
consecutive permutes, dropping those that become the identity:

  permute(permute(z, a), b)         -> permute(z, a o b), or z when that is identity
  f(permute(z, a))                  -> permute(f(z), a)     f elementwise, unary
  f(permute(z, a), permute(w, a))   -> permute(f(z, w), a)  same permutation
  f(permute(z, a), c)               -> permute(f(z, c'), a) c a constant or a scalar;
                                                            c' = c broadcast to full
                                                            rank, inverse-permuted
                                                            (folded by FoldConstant)
  pool2d_NCHW(permute(z, NHWC->NCHW)) -> permute(pool2d_NHWC(z), NHWC->NCHW)
  reduce(permute(z, a), axes)       -> the same reduction of z over the mapped axes,
                                       then the permute that the kept axes need

Only whole-tensor elementwise ops, pools and the sum/mean/max/min reductions
move; anything else (softmax, norms, matmul...) sees the permuted tensor as
before. Runs after ConvertLayout, before FoldConstant and LegalizeOps; the
permutes left behind by a move are removed as dead code.
"""
from __future__ import annotations

import tvm
from tvm import relax

_NHWC_TO_NCHW = (0, 3, 1, 2)

_UNARY = {f"relax.{n}" for n in (
    "abs", "negative", "exp", "log", "sqrt", "rsqrt", "sigmoid", "tanh", "erf", "square",
    "floor", "ceil", "round", "sign", "clip", "astype", "nn.relu", "nn.gelu", "nn.gelu_tanh",
    "nn.silu", "nn.leakyrelu", "nn.softplus", "isnan", "logical_not")}
_BINARY = {f"relax.{n}" for n in (
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "floor_divide",
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
    "logical_and", "logical_or")}
_POOL = {"relax.nn.max_pool2d", "relax.nn.avg_pool2d", "relax.nn.adaptive_avg_pool2d"}
_REDUCE = {f"relax.{n}" for n in ("sum", "mean", "max", "min")}


def _op_name(expr):
    if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
        return expr.op.name
    return None


def _ndim(expr):
    ty = expr.ty
    return ty.ndim if isinstance(ty, relax.TensorType) else -1


def _inverse(axes):
    inv = [0] * len(axes)
    for i, a in enumerate(axes):
        inv[a] = i
    return inv


@relax.expr_functor.mutator
class _Sinker(relax.PyExprMutator):
    def _permuted(self, expr):
        """(z, axes) when `expr` is a var bound to permute_dims(z, axes)."""
        if not isinstance(expr, relax.Var):
            return None
        bound = self.lookup_binding(expr)
        if _op_name(bound) != "relax.permute_dims" or bound.attrs.axes is None:
            return None
        return bound.args[0], [int(a) for a in bound.attrs.axes]

    def _permute(self, expr, axes):
        if list(axes) == list(range(len(axes))):
            return expr
        return relax.op.permute_dims(expr, axes)

    def _other_operand(self, expr, axes):
        """`expr` in the un-permuted frame, or None when that would cost a copy."""
        ndim = _ndim(expr)
        if ndim <= 0:  # a scalar (prim value or 0-d tensor) broadcasts the same either way
            return expr
        if isinstance(expr, tvm.ir.Constant) and ndim <= len(axes):
            shape = [1] * (len(axes) - ndim) + [int(s) for s in expr.value.shape]
            full = relax.op.reshape(expr, shape) if ndim < len(axes) else expr
            return relax.op.permute_dims(full, _inverse(axes))
        return None

    def visit_call_(self, call):  # noqa: D102 - tvm's visitor name
        call = super().visit_call_(call)
        name = _op_name(call)
        if name is None or not call.args:
            return call
        if name == "relax.permute_dims":
            inner = self._permuted(call.args[0])
            if inner is None or call.attrs.axes is None:
                return call
            z, a = inner
            b = [int(x) for x in call.attrs.axes]
            return self._permute(z, [a[i] for i in b])
        if name in _BINARY and len(call.args) == 2:
            return self._binary(call)
        first = self._permuted(call.args[0])
        if first is None:
            return call
        z, a = first
        if name in _UNARY and all(_ndim(x) < 0 for x in call.args[1:]):
            moved = relax.Call(call.op, [z, *call.args[1:]], call.attrs, call.ty_args)
            return self._permute(self.builder_.emit(moved), a)
        if name in _POOL and tuple(a) == _NHWC_TO_NCHW:
            return self._pool_nhwc(call, z)
        if name in _REDUCE:
            return self._reduce(call, z, a)
        return call

    def _binary(self, call):
        lhs, rhs = (self._permuted(x) for x in call.args)
        if lhs is None and rhs is None:
            return call
        a = (lhs or rhs)[1]
        args = []
        for arg, permuted in zip(call.args, (lhs, rhs)):
            if permuted is not None and permuted[1] == a:
                args.append(permuted[0])
            else:
                args.append(self._other_operand(arg, a))
        if any(x is None for x in args):
            return call
        moved = relax.Call(call.op, args, call.attrs, call.ty_args)
        return self._permute(self.builder_.emit(moved), a)

    def _pool_nhwc(self, call, z):
        attrs = call.attrs
        if attrs.layout != "NCHW" or attrs.out_layout != "NCHW":
            return call
        if call.op.name == "relax.nn.adaptive_avg_pool2d":
            size = None if attrs.output_size is None else [int(s) for s in attrs.output_size]
            pooled = relax.op.nn.adaptive_avg_pool2d(z, size, layout="NHWC", out_layout="NHWC")
        else:
            make = (relax.op.nn.max_pool2d if call.op.name == "relax.nn.max_pool2d"
                    else relax.op.nn.avg_pool2d)
            pooled = make(z, [int(s) for s in attrs.pool_size], [int(s) for s in attrs.strides],
                          [int(s) for s in attrs.padding], [int(s) for s in attrs.dilation],
                          bool(attrs.ceil_mode), bool(attrs.count_include_pad),
                          layout="NHWC", out_layout="NHWC")
        return self._permute(self.builder_.emit(pooled), list(_NHWC_TO_NCHW))

    def _reduce(self, call, z, a):
        ndim = len(a)
        axes = (list(range(ndim)) if call.attrs.axis is None
                else [int(x) % ndim for x in call.attrs.axis])
        keep = bool(call.attrs.keepdims)
        mapped = sorted(a[i] for i in axes)
        make = getattr(relax.op, call.op.name.split(".")[-1])  # sum, mean, max, min
        reduced = self.builder_.emit(make(z, mapped, keep))
        if keep:
            return self._permute(reduced, a)
        # Output dims in the permuted frame are a[i] for the kept i, in order;
        # the reduction of z leaves them in ascending order.
        kept = [a[i] for i in range(ndim) if i not in axes]
        order = sorted(kept)
        return self._permute(reduced, [order.index(k) for k in kept])


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.SinkPermutes")
def sink_permutes(mod, _ctx):
    """Apply the rewrites above to every Relax function, then drop dead bindings."""
    # Forward trivial bindings first (decomposed batch_norm leaves `y = (x, m, v)[0]`)
    # so that each permute is seen by its real consumer.
    mod = relax.transform.CanonicalizeBindings()(mod)
    updates = {}
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            new = _Sinker(mod).visit_expr(func)
            if not new.same_as(func):
                updates[gvar] = relax.analysis.remove_all_unused(new)
    if not updates:
        return mod
    mod = mod.clone() if hasattr(mod, "clone") else mod
    for gvar, func in updates.items():
        mod.update_func(gvar, func)
    # A permute pair that cancelled leaves `y = z`: forward z to y's uses.
    return relax.transform.CanonicalizeBindings()(mod)
