"""Relax pass: let a conv with a fused residual add accumulate into the
residual's own buffer.

conv2d_add_nhwc(x, other, h) computes conv(x) + other into a fresh copy of
`other`. When `other` is dead after the call and nothing else can see its
storage, the copy is wasted: conv2d_add_nhwc_inplace writes into `other`
itself (oneDNN's sum post-op, as Inductor's ConvolutionBinaryInplace does).

`other` qualifies only if all of these hold, so no value anyone can read
changes:
  - it is bound in the same dataflow block by one of our extern kernels, whose
    outputs are fresh tensors that the VM's memory planner does not manage
    (a planned buffer would be reused after its last use while our output,
    which aliases it, is still alive);
  - every other use of it is an earlier binding in that block that passes it
    to one of our kernels as a read-only input, so no alias of it exists and
    nothing reads it afterwards (not a later binding, not the function output).
Bindings in a dataflow block run in order in the VM and no pass after this
one reorders them, so "earlier" is a fact about execution.

Runs last, after FuseOps/FuseTIR, on every Relax function.
"""
from __future__ import annotations

from collections import Counter

import tvm
from tvm import relax

from ._relax_uses import var_uses

_PREFIX = "torch_tvm.kernels."
_ADD = _PREFIX + "conv2d_add_nhwc"
_ADD_IN_PLACE = _PREFIX + "conv2d_add_nhwc_inplace"
# Kernels whose output is a fresh tensor and which keep no reference to, and
# return no alias of, their inputs (the in-place one consumes its second).
_FRESH_OUTPUT = {_PREFIX + n for n in ("conv2d_nhwc", "conv2d_nhwc_trusting",
                                       "conv2d_add_nhwc", "conv2d_add_nhwc_inplace",
                                       "linear", "matmul",
                                       "embedding")}


def _extern(expr):
    """(kernel name, args) of call_pure_packed to an ExternFunc, else (None, None)."""
    if (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
            and expr.op.name == "relax.call_pure_packed"
            and isinstance(expr.args[0], relax.ExternFunc)):
        return str(expr.args[0].global_symbol), list(expr.args[1:])
    return None, None


def _in_place_candidates(func):
    uses = var_uses(func)
    targets, consumed = set(), set()  # in-place bindings; the buffers they take
    if not isinstance(func.body, relax.SeqExpr):
        return targets
    for block in func.body.blocks:
        if not isinstance(block, relax.DataflowBlock):
            continue
        fresh = set()                # vars bound by a fresh-output kernel
        read_only_uses = Counter()   # uses so far as a read-only kernel input
        for binding in block.bindings:
            name, args = _extern(binding.value) if isinstance(binding, relax.VarBinding) \
                else (None, None)
            if name == _ADD:
                other = args[1]
                if (other in fresh and other not in consumed
                        and uses[other] == read_only_uses[other] + 1):
                    targets.add(binding.var)
                    consumed.add(other)
                    fresh.add(binding.var)
                    read_only_uses[args[0]] += 1
                    continue
            if name in _FRESH_OUTPUT:
                fresh.add(binding.var)
                for a in args:
                    if isinstance(a, relax.Var):
                        read_only_uses[a] += 1
    return targets


def _rewrite(func):
    targets = _in_place_candidates(func)
    if not targets:
        return func

    @relax.expr_functor.mutator
    class _ToInPlace(relax.PyExprMutator):
        def visit_var_binding_(self, binding):
            name, args = _extern(binding.value)
            if name == _ADD and binding.var in targets:
                value = relax.op.call_pure_packed(_ADD_IN_PLACE, *args,
                                                  ty_args=binding.value.ty_args[0])
                value = self.builder_.normalize(value)
                self.builder_.emit_normalized(relax.VarBinding(binding.var, value))
                return
            super().visit_var_binding_(binding)

    return _ToInPlace().visit_expr(func)


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.AccumulateResidualInPlace")
def accumulate_residual_in_place(mod, _ctx):
    for gv, func in list(mod.functions.items()):
        if isinstance(func, relax.Function):
            mod[gv] = _rewrite(func)
    return mod
