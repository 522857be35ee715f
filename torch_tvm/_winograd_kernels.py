"""Winograd F(m, 3) convolution kernels for NHWC: the stages of a 3x3,
stride-1 convolution with m x m output tiles (alpha = m + 2):

  weight transform  U[a, c, k]  = G g G^T            numpy, once, at compile time
  input transform   V[a, p, c]  = B^T d B            TIR, per tile p, channels as vectors
  batched GEMM      M[a, p, k]  = V[a] @ U[a]        alpha^2 GEMMs: torch_tvm's packed
                                                     GEMM (U packed at compile time), or
                                                     at::matmul without AVX2/FMA
  output transform  Y[tile]     = A^T M A (+ bias, + residual, relu)      TIR

The GEMM does the multiplies: alpha^2 / m^2 per output against 9 for the
direct conv (F(2,3): 2.25x fewer, F(4,3): 4x fewer). The transforms are built
with TVM's IR builder as straight-line vector code over one tile and one
channel vector, the matrices' coefficients folded in (zeros skipped, +-1 as
adds); interior tiles skip the bounds checks.

NaN and infinity: Winograd's transforms would spread a NaN in one input
pixel to every output of its tiles, and turn an infinity into NaN (inf -
inf), where eager gives NaN or inf only in the pixel's 3x3 neighbourhood. A
non-finite input makes every GEMM output of its tile non-finite (the
weights are finite), so the output transform checks the 36 (or 16) values
it loads: where one is not finite, that tile's channel vector is computed
directly from X and the 3x3 weight, as eager computes it.

Why no let-bindings and no local buffers: in TVM 0.27, FlattenBuffer turns
every statement-level binding into a local buffer, StorageRewrite merges
vector locals into one allocation, and a local buffer inside a parallel loop
becomes a heap workspace (TVMBackendAllocWorkspace) that LLVM cannot keep in
registers. So each store is one expression over the loads, and LLVM's value
numbering shares the common loads and sums (the buffers are noalias).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import tirx
from tvm.script.ir_builder import IRBuilder
from tvm.tirx.script.builder import ir as T
from tvm.topi.nn.winograd_util import _cook_toom_convolution, _interpolation_points

# Winograd kernels call this once per run, so stats() shows they ran.
COUNTER = "torch_tvm.kernels.count_winograd"
GEMM = "torch_tvm.kernels.matmul"
# The same GEMMs on torch_tvm's packed GEMM, U packed once at compile time.
PACKED_GEMM = "torch_tvm.kernels.batched_gemm"
PACKED_GEMM_PREPACK = "torch_tvm.kernels.batched_gemm_prepack"
PACKED_GEMM_SUPPORTED = "torch_tvm.kernels.packed_gemm_supported"


def matrices(m: int):
    """(A, B, G) in float64: Y = A^T [(G g G^T) * (B^T d B)] A."""
    return _cook_toom_convolution(_interpolation_points(m + 2), m, 3)


@dataclass(frozen=True)
class Shape:
    """A 3x3, stride-1, dilation-1, ungrouped NHWC conv."""
    n: int
    h: int
    w: int
    c: int
    k: int
    pad_h: int
    pad_w: int

    @property
    def out_h(self) -> int:
        return self.h + 2 * self.pad_h - 2

    @property
    def out_w(self) -> int:
        return self.w + 2 * self.pad_w - 2


@dataclass(frozen=True)
class Plan:
    """Tiling of one conv: tile size m and the target's fp32 vector lanes."""
    shape: Shape
    m: int
    lanes: int

    @property
    def alpha(self) -> int:
        return self.m + 2

    @property
    def tiles_h(self) -> int:
        return -(-self.shape.out_h // self.m)

    @property
    def tiles_w(self) -> int:
        return -(-self.shape.out_w // self.m)

    @property
    def tiles(self) -> int:
        return self.shape.n * self.tiles_h * self.tiles_w


def direct_weight(w_ohwi: np.ndarray) -> np.ndarray:
    """OHWI -> [3, 3, c, k], the exact path's layout (output channels as vectors)."""
    return np.ascontiguousarray(w_ohwi.transpose(1, 2, 3, 0), dtype=np.float32)


def transform_weight(w_ohwi: np.ndarray, plan: Plan) -> np.ndarray:
    """OHWI 3x3 weight -> U [alpha^2, c, k] (float32), computed in float64."""
    _, _, g = matrices(plan.m)
    k, _, _, c = w_ohwi.shape
    u = np.einsum("ar,krsc,bs->abck", g, w_ohwi.astype(np.float64), g)
    return np.ascontiguousarray(u.reshape(plan.alpha ** 2, c, k), dtype=np.float32)


def _channel_lanes(channels: int, lanes: int) -> int:
    while lanes > 1 and channels % lanes:
        lanes //= 2
    return lanes


class _Vec:
    """float32 vectors of `lanes` lanes (1: scalars) as TIR expressions."""

    def __init__(self, lanes: int):
        self.lanes = lanes

    def const(self, v: float):
        c = tirx.const(float(v), "float32")
        return c if self.lanes == 1 else tirx.Broadcast(c, self.lanes)

    def span(self, start):
        return start if self.lanes == 1 else tirx.Ramp(start, 1, self.lanes)

    def load(self, buf, *index_then_channel):
        *index, start = index_then_channel
        return tirx.BufferLoad(buf, [*index, self.span(start)])

    def broadcast(self, scalar):
        return scalar if self.lanes == 1 else tirx.Broadcast(scalar, self.lanes)

    def combine(self, coeffs, terms):
        """sum coeffs[i] * terms[i] with the coefficients folded in."""
        out = None
        for c, t in zip(coeffs, terms):
            c = float(c)
            if c == 0.0:
                continue
            if abs(c) == 1.0:
                term, negative = t, c < 0
            else:
                term, negative = t * self.const(abs(c)), c < 0
            if out is None:
                out = (self.const(0.0) - term) if negative else term
            else:
                out = out - term if negative else out + term
        return self.const(0.0) if out is None else out


def _tile(plan: Plan, p):
    th, tw = plan.tiles_h, plan.tiles_w
    return p // (th * tw), p // tw % th, p % tw


def _func(name: str):
    T.func_name(name)  # private (no global symbol): a model has one per conv shape
    T.func_attr({"tirx.noalias": True, "tirx.is_scheduled": True})


def input_transform(plan: Plan, count: bool = True) -> tirx.PrimFunc:
    """X (NHWC) -> V [alpha^2, tiles, c]. `count`: bump the Winograd counter
    once per run (off for the candidates the choice times)."""
    s, m, al = plan.shape, plan.m, plan.alpha
    v = _Vec(_channel_lanes(s.c, plan.lanes))
    bt = matrices(m)[1].T  # B^T, alpha x alpha
    with IRBuilder() as ib:
        with T.prim_func(is_private=True):
            _func("winograd_input")
            x = T.arg("X", T.buffer((s.n, s.h, s.w, s.c), "float32"))
            out = T.arg("V", T.buffer((al * al, plan.tiles, s.c), "float32"))
            with T.sblock("root"):
                if count:
                    T.evaluate(tirx.call_packed(COUNTER))
                with T.parallel(0, plan.tiles) as p:
                    n, ti, tj = _tile(plan, p)
                    h0, w0 = ti * m - s.pad_h, tj * m - s.pad_w
                    with T.serial(0, s.c // v.lanes) as co:
                        def body(checked):
                            d = [[None] * al for _ in range(al)]
                            for r in range(al):
                                for c in range(al):
                                    load = v.load(x, n, h0 + r, w0 + c, co * v.lanes)
                                    if checked:
                                        ok = tirx.all(0 <= h0 + r, h0 + r < s.h,
                                                      0 <= w0 + c, w0 + c < s.w)
                                        load = tirx.if_then_else(ok, load, v.const(0.0))
                                    d[r][c] = load
                            t = [[v.combine(bt[i], [d[r][c] for r in range(al)])
                                  for c in range(al)] for i in range(al)]
                            for i in range(al):
                                for j in range(al):
                                    T.buffer_store(out, v.combine(bt[j], t[i]),
                                                   [i * al + j, p, v.span(co * v.lanes)])

                        interior = tirx.all(0 <= h0, h0 + al <= s.h, 0 <= w0, w0 + al <= s.w)
                        with T.If(interior):
                            with T.Then():
                                body(False)
                            with T.Else():
                                body(True)
    return ib.get()


def _any_not_finite(vals, lanes):
    """A scalar bool: some lane of some value is NaN or infinite (its
    exponent bits are all ones)."""
    total = vals[0]
    for val in vals[1:]:
        total = total + val  # NaN or inf in any term makes the sum non-finite
    ity = "int32" if lanes == 1 else f"int32x{lanes}"
    exp = tirx.const(0x7F800000, "int32")
    if lanes > 1:
        exp = tirx.Broadcast(exp, lanes)
    bits = tirx.reinterpret(ity, total) & exp
    hit = tirx.Select(bits == exp, exp, exp - exp)
    if lanes == 1:
        return hit != 0
    reduced = tirx.Shuffle([hit], [tirx.const(0, "int32")])
    for i in range(1, lanes):
        reduced = reduced | tirx.Shuffle([hit], [tirx.const(i, "int32")])
    return reduced != 0


def output_transform(plan: Plan, bias: bool, residual: bool, relu: bool) -> tirx.PrimFunc:
    """M [alpha^2, tiles, k] -> Y (NHWC), + bias, + residual, relu; channel
    vectors of tiles with a non-finite M computed directly from X and WD
    [3, 3, c, k]."""
    s, m, al = plan.shape, plan.m, plan.alpha
    v = _Vec(_channel_lanes(s.k, plan.lanes))
    at = matrices(m)[0].T  # A^T, m x alpha
    out_shape = (s.n, s.out_h, s.out_w, s.k)
    with IRBuilder() as ib:
        with T.prim_func(is_private=True):
            _func("winograd_output")
            mm = T.arg("M", T.buffer((al * al, plan.tiles, s.k), "float32"))
            x = T.arg("X", T.buffer((s.n, s.h, s.w, s.c), "float32"))
            wd = T.arg("WD", T.buffer((3, 3, s.c, s.k), "float32"))
            b = T.arg("bias", T.buffer((s.k,), "float32")) if bias else None
            res = T.arg("R", T.buffer(out_shape, "float32")) if residual else None
            y = T.arg("Y", T.buffer(out_shape, "float32"))

            def store(val, n, hh, ww, ch):
                if b is not None:
                    val = val + v.load(b, ch)
                if res is not None:
                    val = val + v.load(res, n, hh, ww, ch)
                if relu:  # as a select, relu keeps NaN (NaN < 0 is false), as eager does
                    val = tirx.Select(val < v.const(0.0), v.const(0.0), val)
                T.buffer_store(y, val, [n, hh, ww, v.span(ch)])

            with T.sblock("root"):
                with T.parallel(0, plan.tiles) as p:
                    n, ti, tj = _tile(plan, p)
                    h0, w0 = ti * m, tj * m
                    with T.serial(0, s.k // v.lanes) as ko:
                        ch = ko * v.lanes
                        ms = [v.load(mm, a, p, ch) for a in range(al * al)]
                        with T.If(_any_not_finite(ms, v.lanes)):
                            with T.Then():
                                _direct(v, plan, x, wd, y, n, h0, w0, ch, store)
                            with T.Else():
                                t = [[v.combine(at[i], [ms[r * al + c] for r in range(al)])
                                      for c in range(al)] for i in range(m)]
                                full = s.out_h % m == 0 and s.out_w % m == 0
                                for i in range(m):
                                    for j in range(m):
                                        val = v.combine(at[j], t[i])
                                        if full:
                                            store(val, n, h0 + i, w0 + j, ch)
                                            continue
                                        with T.If(tirx.all(h0 + i < s.out_h, w0 + j < s.out_w)):
                                            with T.Then():
                                                store(val, n, h0 + i, w0 + j, ch)
    return ib.get()


def _direct(v, plan, x, wd, y, n, h0, w0, ch, store):
    """The exact path: a direct 3x3 convolution of one tile's channel vector
    (rare: only where an input is not finite). It accumulates in Y itself,
    which only this tile writes: a local accumulator would be a heap
    allocation inside the parallel loop."""
    s, m = plan.shape, plan.m
    with T.grid(m, m) as (ii, jj):
        hy, wy = h0 + ii, w0 + jj
        with T.If(tirx.all(hy < s.out_h, wy < s.out_w)):
            with T.Then():
                T.buffer_store(y, v.const(0.0), [n, hy, wy, v.span(ch)])
                with T.grid(3, 3) as (rr, ss):
                    hh, ww = hy + rr - s.pad_h, wy + ss - s.pad_w
                    with T.If(tirx.all(0 <= hh, hh < s.h, 0 <= ww, ww < s.w)):
                        with T.Then():
                            with T.serial(0, s.c) as cc:
                                xv = v.broadcast(tirx.BufferLoad(x, [n, hh, ww, cc]))
                                T.buffer_store(y, v.load(y, n, hy, wy, ch)
                                               + xv * v.load(wd, rr, ss, cc, ch),
                                               [n, hy, wy, v.span(ch)])
                store(v.load(y, n, hy, wy, ch), n, hy, wy, ch)


@functools.lru_cache(maxsize=256)
def kernels(plan: Plan, bias: bool, residual: bool, relu: bool, count: bool = True):
    """(input transform, output transform) PrimFuncs, cached: a model repeats
    its conv shapes."""
    return input_transform(plan, count), output_transform(plan, bias, residual, relu)
