// Pointwise math: exp, log, sqrt, rsqrt, abs, erf, pow (tensor ** scalar,
// tensor ** tensor, scalar ** tensor), softplus, mish.
#include <c10/core/DefaultDtype.h>

#include <stdexcept>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

bool IsFloat(const std::string& dtype) {
  return dtype.rfind("float", 0) == 0 || dtype == "bfloat16";
}

// Tensor input i; integer and bool tensors cast to the default float dtype,
// as torch computes its float-only unary ops (exp(int64) is float32).
Expr FloatTensor(ConvertContext& ctx, size_t i) {
  Expr x = ctx.Tensor(i);
  if (IsFloat(ctx.bb.InfoOf(x).dtype)) return x;
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
  } else if (!IsFloat(dtype)) {
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
  if (!IsFloat(dtype)) {
    throw std::runtime_error("pow with an integer tensor exponent (" + dtype +
                             "): TVM's power is float-only");
  }
  ctx.SetOutput(0, ctx.bb.Op("power", x, y));
}

// True / false when the torch dtype category of a pow operand is known from
// the graph's types (profiled tensor types, int/float scalars).
std::optional<bool> IsIntegral(const ArgInfo& arg) {
  const auto& type = arg.type;
  if (auto t = type->cast<c10::TensorType>()) {
    if (auto st = t->scalarType()) return at::isIntegralType(*st, /*includeBool=*/true);
    return std::nullopt;
  }
  if (type->isSubtypeOf(*c10::IntType::get()) || type->isSubtypeOf(*c10::BoolType::get())) {
    return true;
  }
  if (type->isSubtypeOf(*c10::FloatType::get())) return false;
  return std::nullopt;
}

std::optional<std::string> FloatPowOnly(const OpSignature& op) {
  auto a = IsIntegral(op.Arg(0)), b = IsIntegral(op.Arg(1));
  if (a.value_or(false) && b.value_or(false)) {
    return "pow of integers with a tensor exponent (TVM's power is float-only)";
  }
  return std::nullopt;
}

// softplus(x) = log1p(exp(beta * x)) / beta, or x where beta * x > threshold.
Expr Softplus(ConvertContext& ctx, const Expr& x, double beta, double threshold) {
  if (!IsFloat(ctx.bb.InfoOf(x).dtype)) {
    throw std::runtime_error("softplus/mish need a floating tensor");
  }
  return ctx.bb.Op("nn.softplus", x, beta, threshold);
}

}  // namespace

TORCH_TVM_CONVERTERS(math) {
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
    if (!IsFloat(dtype)) throw std::runtime_error("softplus/mish need a floating tensor");
    auto& bb = c.bb;
    Expr e = bb.Op("exp", x);
    Expr n = bb.Op("multiply", e, bb.Op("add", e, bb.ScalarConstant(2.0, dtype)));
    Expr ratio = bb.Op("divide", n, bb.Op("add", n, bb.ScalarConstant(2.0, dtype)));
    Expr big = bb.Op("greater", x, bb.ScalarConstant(20.0, dtype));
    c.SetOutput(0, bb.Op("where", big, x, bb.Op("multiply", x, ratio)));
  });
}

}  // namespace torch_tvm::convert
