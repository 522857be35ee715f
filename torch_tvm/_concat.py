"""Concatenation as one copy loop per input.

TOPI's concatenate computes every output element through a chain of
`if_then_else` over the inputs, one test per input. With many inputs (a
DenseNet block concatenates up to 48 feature maps along the channel axis,
the innermost one in NHWC) and the batch norm and relu that follow fused into
it, each element ran its whole chain and nothing vectorised: the 58 fused
concat + BN + relu kernels took 20 ms of DenseNet-121's 61 ms (batch 1,
2 threads, Zen 4).

This rule writes the concatenation as a PrimFunc with one block per input,
each copying its input into its slice of the output. Each block is a plain
elementwise nest that the default schedule parallelises and vectorises;
elementwise producers fused into it are inlined into the block that reads
them. It is used from `MIN_INPUTS` inputs up; two-input concatenations
(channel shuffles) keep TOPI's form, which fuses with its consumers.
"""
from __future__ import annotations

import tvm
from tvm import relax

MIN_INPUTS = 3


def _tir_source(shapes, dtype, axis):
    out_shape = list(shapes[0])
    out_shape[axis] = sum(s[axis] for s in shapes)
    nd = len(out_shape)
    names = [f"v{d}" for d in range(nd)]
    params = ", ".join(f'x{i}: T.Buffer({tuple(s)}, "{dtype}")' for i, s in enumerate(shapes))
    lines = ["@T.prim_func(private=True, s_tir=True)",
             f'def concat({params}, out: T.Buffer({tuple(out_shape)}, "{dtype}")):',
             '    T.func_attr({"tirx.noalias": True})']
    offset = 0
    for i, s in enumerate(shapes):
        loops = ", ".join(f"i{d}" for d in range(nd))
        dst = [f"{n} + {offset}" if d == axis and offset else n for d, n in enumerate(names)]
        lines += [f"    for {loops} in T.grid({', '.join(str(int(e)) for e in s)}):",
                  f'        with T.sblock("T_concat_{i}"):',
                  f'            {", ".join(names)} = T.axis.remap("{"S" * nd}", [{loops}])',
                  f"            out[{', '.join(dst)}] = x{i}[{', '.join(names)}]"]
        offset += int(s[axis])
    return "\n".join(lines) + "\n"


def concat_rule(bb, call):
    """Legalise relax.concat with at least MIN_INPUTS static-shape inputs."""
    tup = call.args[0]
    fields = list(tup.fields) if isinstance(tup, relax.Tuple) else None
    if fields is None or len(fields) < MIN_INPUTS:
        return None
    types = [f.ty for f in fields]
    if not all(isinstance(t, relax.TensorType) and t.shape is not None for t in types):
        return None
    try:
        shapes = [[int(d) for d in t.shape] for t in types]
    except (TypeError, ValueError):
        return None  # a symbolic dimension
    dtype = str(types[0].dtype)
    nd = len(shapes[0])
    if nd == 0 or any(str(t.dtype) != dtype or len(s) != nd for t, s in zip(types, shapes)):
        return None
    if call.attrs.axis is None:
        return None
    axis = int(call.attrs.axis) % nd
    # Empty inputs add nothing: they are not passed at all.
    kept = [(f, s) for f, s in zip(fields, shapes) if s[axis] > 0]
    if not kept:
        return None
    func = tvm.script.from_source(_tir_source([s for _, s in kept], dtype, axis))
    gv = bb.add_func(func, "concatenate")
    return relax.call_tir(gv, [f for f, _ in kept], call.ty)
