// Pointwise math: exp, log, sqrt, rsqrt, abs, erf, pow (tensor ** scalar,
// tensor ** tensor, scalar ** tensor), softplus, mish; log1p, expm1, log2,
// log10, exp2 (Relax has none of them); and the ELU family, built on expm1.
#include <c10/core/DefaultDtype.h>

#include <cmath>
#include <stdexcept>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// Tensor input i; integer and bool tensors cast to the default float dtype,
// as torch computes its float-only unary ops (exp(int64) is float32).
Expr FloatTensor(ConvertContext& ctx, size_t i) {
  Expr x = ctx.Tensor(i);
  if (IsFloatDType(ctx.bb.InfoOf(x).dtype)) return x;
  return CastTo(ctx.bb, x, RelaxDType(at::typeMetaToScalarType(at::get_default_dtype())));
}

void FloatUnary(ConvertContext& ctx, const char* op) {
  ctx.SetOutput(0, ctx.bb.Op(op, FloatTensor(ctx, 0)));
}

Expr One(ConvertContext& ctx, const Expr& like) {
  return ctx.bb.ScalarConstant(1.0, ctx.bb.InfoOf(like).dtype);
}

// x ** n for n >= 2 by repeated squaring: exact for floats at n = 2, 3 (the
// multiplies torch does) and for integers at any n, where the products wrap
// modulo 2^bits like torch's powi.
Expr PowBySquaring(RelaxBuilder& bb, const Expr& x, int64_t n) {
  std::optional<Expr> acc;
  Expr base = x;
  while (true) {
    if (n & 1) acc = acc ? bb.Op("multiply", *acc, base) : base;
    n >>= 1;
    if (n == 0) break;
    base = bb.Op("multiply", base, base);
  }
  return *acc;
}

// aten::pow.Tensor_Scalar(self, exponent): the exponent is a compile-time
// scalar. Mirrors ATen's CPU kernel, which fills ones for 0, copies for 1,
// uses sqrt/rsqrt/reciprocal for 0.5/-0.5/-1 and multiplies for 2/3/-2 (so
// sqrt(-0.0) = -0.0 and sqrt(-inf) = NaN, unlike IEEE pow).
void PowTensorScalar(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  if (ctx.Info(0).dtype == "bool") throw std::runtime_error("pow of a bool tensor is not supported");
  std::string dtype = PromotedDType(ctx, 0, 1);
  Expr x = CastTo(bb, ctx.Tensor(0), dtype);
  double e = ctx.Double(1);
  Expr out;
  if (e == 0.0) {
    out = bb.Op("ones_like", x, dtype);
  } else if (e == 1.0) {
    out = bb.Op("multiply", x, One(ctx, x));  // a copy, never the input itself
  } else if (!IsFloatDType(dtype)) {
    // An integer result implies an integer exponent.
    int64_t n = ctx.Int(1);
    if (n < 0) throw std::runtime_error("Integers to negative integer powers are not allowed");
    out = PowBySquaring(bb, x, n);
  } else if (e == 0.5) {
    out = bb.Op("sqrt", x);
  } else if (e == -0.5) {
    out = bb.Op("rsqrt", x);
  } else if (e == -1.0) {
    out = bb.Op("divide", One(ctx, x), x);
  } else if (e == 2.0 || e == 3.0) {
    out = PowBySquaring(bb, x, static_cast<int64_t>(e));
  } else if (e == -2.0) {
    out = bb.Op("divide", One(ctx, x), PowBySquaring(bb, x, 2));
  } else {
    out = bb.Op("power", x, bb.ScalarConstant(e, dtype));
  }
  ctx.SetOutput(0, out);
}

// aten::pow.Tensor_Tensor(self, exponent) and aten::pow.Scalar(self, exponent)
// (a scalar base): elementwise std::pow in the promoted dtype. TVM's power is
// float-only; integer ** integer tensor is left to PyTorch.
void PowBinary(ConvertContext& ctx) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (!IsFloatDType(dtype)) {
    throw std::runtime_error("pow with an integer tensor exponent (" + dtype +
                             "): TVM's power is float-only");
  }
  ctx.SetOutput(0, ctx.bb.Op("power", x, y));
}

std::optional<std::string> FloatPowOnly(const OpSignature& op) {
  auto a = IsIntegralArg(op.Arg(0)), b = IsIntegralArg(op.Arg(1));
  if (a.value_or(false) && b.value_or(false)) {
    return "pow of integers with a tensor exponent (TVM's power is float-only)";
  }
  return std::nullopt;
}

// softplus(x) = log1p(exp(beta * x)) / beta, or x where beta * x > threshold.
Expr Softplus(ConvertContext& ctx, const Expr& x, double beta, double threshold) {
  if (!IsFloatDType(ctx.bb.InfoOf(x).dtype)) {
    throw std::runtime_error("softplus/mish need a floating tensor");
  }
  return ctx.bb.Op("nn.softplus", x, beta, threshold);
}

// floor / ceil / round / trunc: an integer tensor comes back unchanged (a copy).
void Rounding(ConvertContext& ctx, const char* op) {
  Expr x = ctx.Tensor(0);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (dtype == "bool") throw std::runtime_error(std::string(op) + " of a bool tensor");
  if (!IsFloatDType(dtype)) {
    ctx.SetOutput(0, ctx.bb.Op("multiply", x, One(ctx, x)));
    return;
  }
  ctx.SetOutput(0, ctx.bb.Op(op, x));
}

// round(x, decimals) as ATen: nearbyint(x * 10^d) / 10^d, or for d < 0
// nearbyint(x / 10^-d) * 10^-d, in x's dtype.
void RoundDecimals(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (dtype != "float32" && dtype != "float64") {
    throw std::runtime_error("round(decimals) of a " + dtype + " tensor");
  }
  int64_t d = ctx.Int(1);
  bool neg = d < 0;
  double ten_pow = std::pow(10.0, static_cast<double>(neg ? -d : d));
  if (dtype == "float32") ten_pow = static_cast<float>(ten_pow);
  Expr p = ctx.bb.ScalarConstant(ten_pow, dtype);
  Expr out = neg ? ctx.bb.Op("multiply", ctx.bb.Op("round", ctx.bb.Op("divide", x, p)), p)
                 : ctx.bb.Op("divide", ctx.bb.Op("round", ctx.bb.Op("multiply", x, p)), p);
  ctx.SetOutput(0, out);
}

// sign(x) = (0 < x) - (x < 0): 0 for NaN and for -0.0, as ATen.
void Sign(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (dtype == "bool") throw std::runtime_error("sign of a bool tensor");
  Expr zero = ctx.bb.ScalarConstant(0.0, dtype);
  Expr pos = ctx.bb.Op("astype", ctx.bb.Op("less", zero, x), dtype);
  Expr neg = ctx.bb.Op("astype", ctx.bb.Op("less", x, zero), dtype);
  ctx.SetOutput(0, ctx.bb.Op("subtract", pos, neg));
}

Expr C(RelaxBuilder& bb, double v, const std::string& dtype) { return bb.ScalarConstant(v, dtype); }

// log1p(x) without losing small x to 1 + x (Goldberg): u = 1 + x;
// u == 1 ? x : log(u) * x / (u - 1). +inf stays +inf, -1 gives -inf, below
// -1 and NaN give NaN, as std::log1p.
Expr Log1p(RelaxBuilder& bb, const Expr& x) {
  std::string dt = bb.InfoOf(x).dtype;
  Expr u = bb.Op("add", x, C(bb, 1.0, dt));
  Expr um1 = bb.Op("subtract", u, C(bb, 1.0, dt));
  Expr r = bb.Op("divide", bb.Op("multiply", bb.Op("log", u), x), um1);
  r = bb.Op("where", bb.Op("equal", x, C(bb, INFINITY, dt)), x, r);
  return bb.Op("where", bb.Op("equal", u, C(bb, 1.0, dt)), x, r);
}

// expm1(x) without cancellation near 0 (Kahan): u = exp(x); u == 1 ? x :
// u - 1 == -1 ? -1 : (u - 1) * x / log(u); +inf (u = inf) stays +inf.
Expr Expm1(RelaxBuilder& bb, const Expr& x) {
  std::string dt = bb.InfoOf(x).dtype;
  Expr u = bb.Op("exp", x);
  Expr um1 = bb.Op("subtract", u, C(bb, 1.0, dt));
  // (u - 1) * (x / log(u)): x / log(u) is near 1, so nothing overflows
  // before the result does (exp(88) * 88 would).
  Expr r = bb.Op("multiply", um1, bb.Op("divide", x, bb.Op("log", u)));
  r = bb.Op("where", bb.Op("equal", u, C(bb, INFINITY, dt)), u, r);
  r = bb.Op("where", bb.Op("equal", um1, C(bb, -1.0, dt)), um1, r);
  return bb.Op("where", bb.Op("equal", u, C(bb, 1.0, dt)), x, r);
}

// elu(x, alpha, scale, input_scale) = x > 0 ? scale * x
//                                           : scale * alpha * expm1(x * input_scale)
// (ATen's formula; selu and celu are its special cases). NaN stays NaN.
Expr Elu(ConvertContext& ctx, double alpha, double scale, double input_scale) {
  RelaxBuilder& bb = ctx.bb;
  Expr x = ctx.Tensor(0);
  std::string dt = bb.InfoOf(x).dtype;
  if (!IsFloatDType(dt)) throw std::runtime_error("elu needs a floating tensor");
  Expr neg = bb.Op("multiply", Expm1(bb, Scaled(ctx, x, input_scale)), C(bb, alpha * scale, dt));
  Expr pos = Scaled(ctx, x, scale);
  return bb.Op("where", bb.Op("greater", x, C(bb, 0.0, dt)), pos, neg);
}

void FloatUnaryWith(ConvertContext& ctx, Expr (*fn)(RelaxBuilder&, const Expr&)) {
  ctx.SetOutput(0, fn(ctx.bb, FloatTensor(ctx, 0)));
}

}  // namespace

TORCH_TVM_CONVERTERS(math) {
  reg.Register("aten::log1p", [](ConvertContext& c) { FloatUnaryWith(c, Log1p); });
  reg.Register("aten::expm1", [](ConvertContext& c) { FloatUnaryWith(c, Expm1); });
  reg.Register("aten::log2", [](ConvertContext& c) {
    Expr x = FloatTensor(c, 0);
    c.SetOutput(0, c.bb.Op("multiply", c.bb.Op("log", x),
                           C(c.bb, 1.0 / std::log(2.0), c.bb.InfoOf(x).dtype)));
  });
  reg.Register("aten::log10", [](ConvertContext& c) {
    Expr x = FloatTensor(c, 0);
    c.SetOutput(0, c.bb.Op("multiply", c.bb.Op("log", x),
                           C(c.bb, 1.0 / std::log(10.0), c.bb.InfoOf(x).dtype)));
  });
  reg.Register("aten::exp2", [](ConvertContext& c) {
    Expr x = FloatTensor(c, 0);
    c.SetOutput(0, c.bb.Op("power", C(c.bb, 2.0, c.bb.InfoOf(x).dtype), x));
  });
  // elu(self, alpha, scale, input_scale)
  reg.Register("aten::elu", [](ConvertContext& c) {
    c.SetOutput(0, Elu(c, c.Double(1), c.Double(2), c.Double(3)));
  });
  reg.Register("aten::selu", [](ConvertContext& c) {
    c.SetOutput(0, Elu(c, 1.6732632423543772848170429916717, 1.0507009873554804934193349852946,
                       1.0));
  });
  // celu(self, alpha) = elu(x, alpha, 1, 1 / alpha)
  reg.Register("aten::celu", [](ConvertContext& c) {
    double alpha = c.Double(1);
    if (alpha == 0.0) throw std::runtime_error("celu with alpha 0");
    c.SetOutput(0, Elu(c, alpha, 1.0, 1.0 / alpha));
  });
  for (const char* op : {"floor", "ceil", "round", "trunc"}) {
    std::string name = op;
    reg.Register("aten::" + name, [name](ConvertContext& c) { Rounding(c, name.c_str()); });
  }
  reg.Register("aten::fix", [](ConvertContext& c) { Rounding(c, "trunc"); });
  reg.Register("aten::round.decimals", RoundDecimals);
  reg.Register("aten::sign", Sign);
  reg.Register("aten::sin", [](ConvertContext& c) { FloatUnary(c, "sin"); });
  reg.Register("aten::cos", [](ConvertContext& c) { FloatUnary(c, "cos"); });
  reg.Register("aten::reciprocal", [](ConvertContext& c) {
    Expr x = FloatTensor(c, 0);
    c.SetOutput(0, c.bb.Op("divide", One(c, x), x));
  });
  reg.Register("aten::square", [](ConvertContext& c) {
    // square(x) = x * x; bool squares to int64 as pow(x, 2) does.
    Expr x = c.Tensor(0);
    if (c.bb.InfoOf(x).dtype == "bool") x = CastTo(c.bb, x, "int64");
    c.SetOutput(0, c.bb.Op("multiply", x, x));
  });
  reg.Register("aten::exp", [](ConvertContext& c) { FloatUnary(c, "exp"); });
  reg.Register("aten::log", [](ConvertContext& c) { FloatUnary(c, "log"); });
  reg.Register("aten::sqrt", [](ConvertContext& c) { FloatUnary(c, "sqrt"); });
  reg.Register("aten::rsqrt", [](ConvertContext& c) { FloatUnary(c, "rsqrt"); });
  reg.Register("aten::erf", [](ConvertContext& c) { FloatUnary(c, "erf"); });
  reg.Register("aten::abs", [](ConvertContext& c) {
    if (c.Info(0).dtype == "bool") throw std::runtime_error("abs of a bool tensor");
    c.SetOutput(0, c.bb.Op("abs", c.Tensor(0)));
  });
  reg.Register("aten::pow.Tensor_Scalar", PowTensorScalar);
  reg.Register("aten::pow.Tensor_Tensor", PowBinary, FloatPowOnly);
  reg.Register("aten::pow.Scalar", PowBinary, FloatPowOnly);
  reg.Register("aten::softplus", [](ConvertContext& c) {
    double beta = c.NumInputs() > 1 ? c.Double(1) : 1.0;
    double threshold = c.NumInputs() > 2 ? c.Double(2) : 20.0;
    c.SetOutput(0, Softplus(c, c.Tensor(0), beta, threshold));
  });
  reg.Register("aten::mish", [](ConvertContext& c) {
    // mish(x) = x * tanh(log1p(exp(x))) = x * n / (n + 2) with n = e^x (e^x + 2):
    // one exp and one division instead of exp, log and tanh (which is another
    // exp and division). Above 20 the ratio rounds to 1 (and n would overflow
    // from 44): x. NaN and -inf (-inf * 0) come out NaN, as in ATen.
    Expr x = c.Tensor(0);
    std::string dtype = c.bb.InfoOf(x).dtype;
    if (!IsFloatDType(dtype)) throw std::runtime_error("softplus/mish need a floating tensor");
    auto& bb = c.bb;
    Expr e = bb.Op("exp", x);
    Expr n = bb.Op("multiply", e, bb.Op("add", e, bb.ScalarConstant(2.0, dtype)));
    Expr ratio = bb.Op("divide", n, bb.Op("add", n, bb.ScalarConstant(2.0, dtype)));
    Expr big = bb.Op("greater", x, bb.ScalarConstant(20.0, dtype));
    c.SetOutput(0, bb.Op("where", big, x, bb.Op("multiply", x, ratio)));
  });
}

}  // namespace torch_tvm::convert
