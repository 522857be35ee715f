"""Vectorisable float32 transcendentals as plain TIR arithmetic.

TVM lowers exp/log/tanh/erf/sigmoid in a vectorised loop to one scalar libm
call per lane (`expf@PLT`), and does not vectorise erf at all (it has no
TVectorizable attribute, so the whole loop body is scalarised). These
functions build the same values from multiplies, adds, selects and exponent
bit manipulation only, so LLVM emits straight vector code for them, inlined
into the fused loop that uses them (../docs/performance.md, "Transcendentals").

Accuracy (float32, checked against float64 in tests/compile/test_fastmath.py):
a few ulp over the whole range, like SLEEF's u10 functions that ATen uses;
NaN propagates, +-inf and overflow/underflow give the IEEE results.

Every function takes and returns a float32 PrimExpr (_legalize applies them
to float32 tensors only; other dtypes keep TVM's own lowering).
"""
from __future__ import annotations

from tvm import tirx

_F32 = "float32"


def _c(v: float):
    return tirx.const(v, _F32)


def _i(v: int):
    return tirx.const(v, "int32")


def _poly(x, coeffs):
    """Horner: coeffs[0] * x^(n-1) + ... + coeffs[-1]."""
    acc = _c(coeffs[0])
    for c in coeffs[1:]:
        acc = acc * x + _c(c)
    return acc


def _pow2(n):
    """2**n as float32 for an int32 n in [-126, 127]."""
    return tirx.reinterpret(_F32, tirx.shift_left(n + _i(127), _i(23)))


_counter = [0]


def let(value, body, dtype=_F32):
    """body(v) with v bound to value once (tirx.Let): the functions nest
    (mish = tanh(softplus(exp...))), and without bindings each use of an
    argument would copy its whole expression tree."""
    if isinstance(value, (tirx.Var, tirx.FloatImm, tirx.IntImm)):
        return body(value)
    _counter[0] += 1
    var = tirx.Var(f"fm{_counter[0]}", dtype)
    return tirx.Let(var, value, body(var))


# (int type, magnitude mask, bits of +inf) per float type, for isnan().
_NAN_BITS = {"float32": ("int32", 0x7FFFFFFF, 0x7F800000),
             "float64": ("int64", 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000),
             "float16": ("int16", 0x7FFF, 0x7C00),
             "bfloat16": ("int16", 0x7FFF, 0x7F80)}


def isnan(x):
    """x is NaN, from its bits: exponent all ones and a nonzero mantissa.

    Not tirx.isnan: that op has no TVectorizable attribute, so TVM's
    VectorizeLoop scalarises any loop whose body calls it (the whole loop,
    left for LLVM to re-vectorise or not). Not x != x either: the TIR
    simplifier folds it to false. A bitwise and plus an integer compare
    vectorise (vpand/vpcmpgtd)."""
    bits = _NAN_BITS.get(str(x.ty))
    if bits is None:
        return tirx.isnan(x)
    ity, mask, inf = bits
    return (tirx.reinterpret(ity, x) & tirx.const(mask, ity)) > tirx.const(inf, ity)


def _nan_to(x, value):
    """value, except where x is NaN (then x)."""
    return tirx.Select(isnan(x), x, value)


_LOG2E = 1.44269504088896341
# ln 2 split so that n * _LN2_HI is exact for |n| <= 256 (Cephes).
_LN2_HI = 0.693359375
_LN2_LO = -2.12194440e-4
_EXP_POLY = [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
             1.6666665459e-1, 5.0000001201e-1]


def exp(x):
    """e**x: Cephes expf's polynomial on [-ln2/2, ln2/2], scaled by 2**n in two
    steps so that subnormal results and overflow to inf come out right."""
    def body(x):
        def with_xc(xc):
            def with_n(n):
                def with_r(r):
                    p = _poly(r, _EXP_POLY) * r * r + r + _c(1.0)

                    def with_ni(ni):
                        n1 = tirx.shift_right(ni, _i(1))
                        return _nan_to(x, p * _pow2(n1) * _pow2(ni - n1))
                    return let(tirx.Cast("int32", n), with_ni, "int32")
                return let(xc - n * _c(_LN2_HI) - n * _c(_LN2_LO), with_r)
            return let(tirx.floor(xc * _c(_LOG2E) + _c(0.5)), with_n)
        return let(tirx.min(tirx.max(x, _c(-104.0)), _c(89.0)), with_xc)
    return let(x, body)


_LOG_POLY = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
             1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
             3.3333331174e-1]


def log(x):
    """log(x): Cephes logf. Subnormal inputs are scaled up first; 0 gives -inf,
    negative gives NaN, +inf gives +inf."""
    def body(x):
        tiny = x < _c(1.17549435e-38)

        def with_bits(bits):
            e = tirx.shift_right(bits, _i(23)) - _i(126) - tirx.Select(tiny, _i(23), _i(0))
            m = tirx.reinterpret(_F32, (bits & _i(0x007FFFFF)) | _i(0x3F000000))  # [0.5, 1)

            def with_m(m):
                small = m < _c(0.707106781186547524)

                def with_f(f):
                    def with_ef(ef):
                        def with_z(z):
                            y = _poly(f, _LOG_POLY) * f * z
                            y = y + ef * _c(_LN2_LO) - _c(0.5) * z
                            res = f + y + ef * _c(_LN2_HI)
                            res = tirx.Select(x == _c(0.0), _c(float("-inf")), res)
                            res = tirx.Select(x < _c(0.0), _c(float("nan")), res)
                            res = tirx.Select(x == _c(float("inf")), x, res)
                            return _nan_to(x, res)
                        return let(f * f, with_z)
                    return let(tirx.Cast(_F32, e - tirx.Select(small, _i(1), _i(0))), with_ef)
                return let(tirx.Select(small, m + m, m) - _c(1.0), with_f)
            return let(m, with_m)
        xs = tirx.Select(tiny, x * _c(8388608.0), x)  # 2**23
        return let(tirx.reinterpret("int32", xs), with_bits, "int32")
    return let(x, body)


_TANH_POLY = [-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1,
              -3.33332819422e-1]


def tanh(x):
    """Cephes tanhf: an odd polynomial below |x| = 0.625, 1 - 2/(e^2|x| + 1) above."""
    def body(x):
        def with_ax(ax):
            def with_z(z):
                small = _poly(z, _TANH_POLY) * z * x + x
                large = let(_c(1.0) - _c(2.0) / (exp(ax + ax) + _c(1.0)),
                            lambda t: tirx.Select(x < _c(0.0), -t, t))
                return _nan_to(x, tirx.Select(ax < _c(0.625), small, large))
            return let(x * x, with_z)
        return let(tirx.abs(x), with_ax)
    return let(x, body)


def sigmoid(x):
    """1 / (1 + e^-x); exact 0 and 1 at the ends, NaN kept."""
    return let(x, lambda x: _nan_to(x, _c(1.0) / (_c(1.0) + exp(-x))))


# erf: a rational approximation of odd degree 13 / even degree 8 on [-4, 4]
# (the coefficients of Eigen's float erf, also TVM's fast_erf_float_expr);
# |erf(x)| rounds to 1 beyond 4.
_ERF_NUM = [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
            -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
            -1.60960333262415e-02]
_ERF_DEN = [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
            -7.37332916720468e-03, -1.42647390514189e-02]


def erf(x):
    def body(x):
        def with_xc(xc):
            def with_x2(x2):
                ratio = _poly(x2, _ERF_NUM) * xc / _poly(x2, _ERF_DEN)
                # tiny |x| (subnormals): erf(x) = 2/sqrt(pi) * x in one rounding
                tiny = tirx.abs(x) < _c(1e-20)
                return _nan_to(x, tirx.Select(tiny, x * _c(1.1283791670955126), ratio))
            return let(xc * xc, with_x2)
        return let(tirx.min(tirx.max(x, _c(-4.0)), _c(4.0)), with_xc)
    return let(x, body)
