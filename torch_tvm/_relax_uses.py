"""Use counts of Relax variables, for passes that must know whether a value
has readers besides the one they rewrite."""
from __future__ import annotations

from collections import Counter

from tvm import relax
from tvm.relax.expr_functor import PyExprVisitor, visitor


@visitor
class _UseCounter(PyExprVisitor):
    def __init__(self):
        self.uses = Counter()

    def visit_var_(self, op):
        self.uses[op] += 1

    def visit_dataflow_var_(self, op):
        self.uses[op] += 1


def var_uses(func: relax.Function) -> Counter:
    """Var -> number of places it is read (binding values, outputs, ...)."""
    counter = _UseCounter()
    counter.visit_expr(func)
    return counter.uses


class Bindings:
    """Bound values of a function, for DPL rewriters.

    relax.dpl.rewrite_call can hand a rewriter the bound *value* of an operand
    instead of its variable; emitting that value again would recompute it.
    operand() maps such a value back to its variable; uses() says how many
    readers the variable bound to a value has.
    """

    def __init__(self, func: relax.Function):
        counts = var_uses(func)
        self._var_of, self._uses = {}, {}
        if isinstance(func.body, relax.SeqExpr):
            for block in func.body.blocks:
                for binding in block.bindings:
                    if isinstance(binding, relax.VarBinding):
                        self._var_of[binding.value] = binding.var
                        self._uses[binding.value] = counts[binding.var]

    def operand(self, expr):
        return self._var_of.get(expr, expr)

    def uses(self, value) -> int:
        """Readers of the variable bound to `value`; 0 if it is not bound."""
        return self._uses.get(value, 0)
