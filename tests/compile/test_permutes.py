"""SinkPermutes (torch_tvm/_permutes.py) alone, on before / expected Relax IR."""
from __future__ import annotations

import numpy as np
import tvm
from tvm import relax
from tvm.script import ir as I
from tvm.script import relax as R

from torch_tvm._permutes import sink_permutes

F32 = "float32"


def _check(before, expected):
    tvm.ir.assert_structural_equal(sink_permutes(before), expected)


def test_elementwise_chain_runs_in_the_input_layout_and_the_permutes_cancel():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 6, 7, 8), F32), y: R.Tensor((1, 6, 7, 8), F32)):
            with R.dataflow():
                a = R.permute_dims(x, [0, 3, 1, 2])
                b = R.permute_dims(y, [0, 3, 1, 2])
                c = R.nn.relu(R.add(a, b))
                d = R.multiply(c, R.const(2.0, F32))
                e = R.permute_dims(d, [0, 2, 3, 1])
                R.output(e)
            return e

    @I.ir_module
    class Expected:
        @R.function
        def main(x: R.Tensor((1, 6, 7, 8), F32), y: R.Tensor((1, 6, 7, 8), F32)):
            with R.dataflow():
                s = R.add(x, y)
                c = R.nn.relu(s)
                e = R.multiply(c, R.const(2.0, F32))
                R.output(e)
            return e

    _check(Before, Expected)


def test_pool_switches_to_nhwc():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 6, 6, 8), F32)):
            with R.dataflow():
                a = R.permute_dims(x, [0, 3, 1, 2])
                p = R.nn.max_pool2d(a, [3, 3], [2, 2], [1, 1, 1, 1])
                R.output(p)
            return p

    @I.ir_module
    class Expected:
        @R.function
        def main(x: R.Tensor((1, 6, 6, 8), F32)):
            with R.dataflow():
                q = R.nn.max_pool2d(x, [3, 3], [2, 2], [1, 1, 1, 1], layout="NHWC",
                                    out_layout="NHWC")
                p = R.permute_dims(q, [0, 3, 1, 2])
                R.output(p)
            return p

    _check(Before, Expected)


def test_reduction_maps_its_axes_and_needs_no_permute_when_the_kept_order_holds():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((2, 6, 6, 8), F32)):
            with R.dataflow():
                a = R.permute_dims(x, [0, 3, 1, 2])
                m = R.mean(a, axis=[2, 3], keepdims=False)
                k = R.sum(a, axis=[1], keepdims=True)
                R.output(m, k)
            return (m, k)

    @I.ir_module
    class Expected:
        @R.function
        def main(x: R.Tensor((2, 6, 6, 8), F32)):
            with R.dataflow():
                m = R.mean(x, axis=[1, 2], keepdims=False)
                s = R.sum(x, axis=[3], keepdims=True)
                k = R.permute_dims(s, [0, 3, 1, 2])
                R.output(m, k)
            return (m, k)

    _check(Before, Expected)


def test_reduction_whose_kept_axes_change_order_gets_the_permute_it_needs():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((2, 5, 6, 8), F32)):
            with R.dataflow():
                a = R.permute_dims(x, [0, 3, 1, 2])   # (2, 8, 5, 6)
                m = R.max(a, axis=[2], keepdims=False)  # (2, 8, 6)
                R.output(m)
            return m

    @I.ir_module
    class Expected:
        @R.function
        def main(x: R.Tensor((2, 5, 6, 8), F32)):
            with R.dataflow():
                r = R.max(x, axis=[1], keepdims=False)  # (2, 6, 8)
                m = R.permute_dims(r, [0, 2, 1])
                R.output(m)
            return m

    _check(Before, Expected)


def test_binary_op_with_an_unpermuted_tensor_is_left_alone():
    @I.ir_module
    class Before:
        @R.function
        def main(x: R.Tensor((1, 6, 7, 8), F32), y: R.Tensor((1, 8, 6, 7), F32)):
            with R.dataflow():
                a = R.permute_dims(x, [0, 3, 1, 2])
                b = R.add(a, y)
                R.output(b)
            return b

    _check(Before, Before)


def test_constant_operand_is_permuted_at_compile_time():
    bias = np.arange(8, dtype=F32).reshape(8, 1, 1)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 6, 7, 8), F32))
    with bb.function("main", [x]):
        with bb.dataflow():
            a = bb.emit(relax.op.permute_dims(x, [0, 3, 1, 2]))
            b = bb.emit(relax.op.add(a, relax.const(bias)))
            out = bb.emit_output(relax.op.permute_dims(b, [0, 2, 3, 1]))
        bb.emit_func_output(out)
    after = relax.transform.FoldConstant()(sink_permutes(bb.get()))

    eb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 6, 7, 8), F32))
    with eb.function("main", [x]):
        with eb.dataflow():
            out = eb.emit_output(relax.op.add(x, relax.const(bias.reshape(1, 1, 1, 8))))
        eb.emit_func_output(out)
    tvm.ir.assert_structural_equal(after, eb.get())
