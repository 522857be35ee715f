// add / sub / mul / div / rsub, tensor-tensor and tensor-scalar, with alpha;
// addcmul / addcdiv; rounding division (div with rounding_mode, floor_divide)
// and remainder.
#include <ATen/ATen.h>

#include <stdexcept>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

void Binary(ConvertContext& ctx, const char* op) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  ctx.SetOutput(0, ctx.bb.Op(op, x, y));
}

// out = a + alpha * b (sub: a - alpha * b; rsub: b - alpha * a).
void AddLike(ConvertContext& ctx, const char* op, bool reversed) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  double alpha = ctx.NumInputs() > 2 ? ctx.Double(2) : 1.0;
  if (reversed) std::swap(x, y);
  ctx.SetOutput(0, ctx.bb.Op(op, x, Scaled(ctx, y, alpha)));
}

// addcmul / addcdiv: self + value * (t1 op t2), in the dtype torch's promotion
// gives the three operands (floats only: see FloatOperands).
void AddCombined(ConvertContext& ctx, const char* op) {
  std::string dtype = ResultDType(ctx, {0, 1, 2});
  if (!IsFloatDType(dtype)) throw std::runtime_error("addcmul / addcdiv of " + dtype);
  Expr self = CastTo(ctx.bb, ctx.Tensor(0), dtype);
  Expr combined = ctx.bb.Op(op, CastTo(ctx.bb, ctx.Tensor(1), dtype),
                            CastTo(ctx.bb, ctx.Tensor(2), dtype));
  double value = ctx.NumInputs() > 3 ? ctx.Double(3) : 1.0;
  ctx.SetOutput(0, ctx.bb.Op("add", self, Scaled(ctx, combined, value)));
}

// addcmul of integers takes an integer `value` (not a double); addcdiv of
// integers is an error in eager. Both stay in PyTorch. Operands whose dtype the
// graph does not state are let through; the converter refuses a non-float
// result (the group then falls back).
std::optional<std::string> FloatOperands(const OpSignature& op) {
  for (size_t i = 0; i < 3; ++i) {
    auto integral = IsIntegralArg(op.Arg(i));
    if (integral && *integral) return "integer operands";
  }
  return std::nullopt;
}

void Divide(ConvertContext& ctx) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  // aten::div is true division: integer operands divide as floats.
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (dtype.rfind("float", 0) != 0 && dtype != "bfloat16") {
    x = CastTo(ctx.bb, x, "float32");
    y = CastTo(ctx.bb, y, "float32");
  }
  ctx.SetOutput(0, ctx.bb.Op("divide", x, y));
}

enum class Rounding { kTrunc, kFloor, kRemainder };

// The divisor (input 1) of a rounding division when known at compile time: a
// Python scalar, a traced constant or a folded value.
std::optional<at::Tensor> ConstantDivisor(const ConvertContext& ctx) {
  std::optional<c10::IValue> c = ctx.op.ConstantArg(1);
  if (!c && !ctx.IsTensor(1)) c = ctx.Constant(1);
  if (!c) return std::nullopt;
  if (c->isTensor()) return c->toTensor();
  if (c->isInt() || c->isDouble() || c->isBool()) return at::scalar_tensor(c->toScalar());
  return std::nullopt;
}

// Integer division or remainder in TVM is undefined behaviour for a zero
// divisor (SIGFPE kills the process) and for INT_MIN / -1; eager raises
// ZeroDivisionError for the first. Only a divisor known to be nonzero at
// compile time is converted.
std::optional<std::string> IntegerDivisorCheck(const OpSignature& op) {
  if (op.key == "aten::div.Tensor_mode" || op.key == "aten::div.Scalar_mode") {
    auto mode = op.ConstantArg(2);
    if (mode && mode->isNone()) return std::nullopt;  // true division
  }
  auto a = IsIntegralArg(op.Arg(0)), b = IsIntegralArg(op.Arg(1));
  // Unknown dtypes are let through: the converter refuses a run-time integer
  // divisor itself (the group then falls back, safely).
  if (!a.value_or(false) || !b.value_or(false)) return std::nullopt;
  auto c = op.ConstantArg(1);
  if (!c) {
    if (op.Arg(1).type->cast<c10::TensorType>()) {
      return op.key + " of integers by a tensor computed at run time: TVM's integer "
             "division by zero is undefined behaviour (eager raises ZeroDivisionError)";
    }
    return std::nullopt;  // a scalar argument: checked at conversion, where it is known
  }
  at::Tensor d = c->isTensor() ? c->toTensor() : at::scalar_tensor(c->toScalar());
  if (d.eq(0).any().item<bool>()) {
    return op.key + " of integers by a constant zero (eager raises ZeroDivisionError)";
  }
  return std::nullopt;
}

// ATen's div_floor_floating_vec (aten/src/ATen/native/cpu/BinaryOpsKernel.cpp),
// op for op, so that ties, signed zeros, inf and NaN come out the same.
Expr FloatFloorDivide(RelaxBuilder& bb, const Expr& a, const Expr& b) {
  std::string dtype = bb.InfoOf(a).dtype;
  auto k = [&](double v) { return bb.ScalarConstant(v, dtype); };
  Expr basic = bb.Op("divide", a, b);
  Expr mod = bb.Op("mod", a, b);  // fmod (LLVM frem)
  Expr inf = k(INFINITY);
  // Sleef's fmod fix-up: where a / b overflows but a is finite, a itself.
  Expr overflow = bb.Op("logical_and", bb.Op("equal", bb.Op("abs", basic), inf),
                        bb.Op("logical_not", bb.Op("equal", bb.Op("abs", a), inf)));
  Expr floor_num = bb.Op("where", overflow, a, bb.Op("subtract", a, mod));
  Expr div = bb.Op("divide", floor_num, b);
  Expr zero = k(0.0), one = k(1.0);
  Expr mod_nonzero = bb.Op("logical_not", bb.Op("equal", mod, zero));
  Expr signs_differ = bb.Op("logical_xor", bb.Op("less", b, zero), bb.Op("less", mod, zero));
  div = bb.Op("where", bb.Op("logical_and", mod_nonzero, signs_differ),
              bb.Op("subtract", div, one), div);
  Expr fl = bb.Op("floor", div);
  fl = bb.Op("where", bb.Op("greater", bb.Op("subtract", div, fl), k(0.5)),
             bb.Op("add", fl, one), fl);
  // copysign(0, a / b): a / b is finite there, so basic * 0 has its sign.
  fl = bb.Op("where", bb.Op("equal", div, zero), bb.Op("multiply", basic, zero), fl);
  return bb.Op("where", bb.Op("equal", b, zero), basic, fl);
}

// ATen's remainder for floats: fmod, moved into b's sign.
Expr FloatRemainder(RelaxBuilder& bb, const Expr& a, const Expr& b) {
  std::string dtype = bb.InfoOf(a).dtype;
  Expr zero = bb.ScalarConstant(0.0, dtype);
  Expr mod = bb.Op("mod", a, b);
  Expr mod_nonzero = bb.Op("logical_not", bb.Op("equal", mod, zero));
  Expr signs_differ = bb.Op("logical_xor", bb.Op("less", b, zero), bb.Op("less", mod, zero));
  return bb.Op("where", bb.Op("logical_and", mod_nonzero, signs_differ), bb.Op("add", mod, b),
               mod);
}

// div(a, b, rounding_mode), floor_divide(a, b), remainder(a, b).
void RoundingDivide(ConvertContext& ctx, Rounding rounding) {
  std::string dtype = PromotedDType(ctx, 0, 1);
  if (dtype == "bool") throw std::runtime_error("rounding division of bool tensors");
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  RelaxBuilder& bb = ctx.bb;
  if (IsFloatDType(dtype)) {
    if (dtype != "float32" && dtype != "float64") {
      throw std::runtime_error("rounding division in " + dtype + " (ATen computes it in float)");
    }
    Expr out = rounding == Rounding::kTrunc   ? bb.Op("trunc", bb.Op("divide", x, y))
               : rounding == Rounding::kFloor ? FloatFloorDivide(bb, x, y)
                                              : FloatRemainder(bb, x, y);
    ctx.SetOutput(0, out);
    return;
  }
  auto divisor = ConstantDivisor(ctx);
  if (!divisor) {
    throw std::runtime_error("integer division by a tensor computed at run time (a zero "
                             "divisor is undefined behaviour in TVM)");
  }
  if (divisor->eq(0).any().item<bool>()) throw std::runtime_error("integer division by zero");
  if (divisor->eq(-1).any().item<bool>()) {
    // INT_MIN / -1 traps in hardware; eager wraps it (x // -1 == -x, x % -1 == 0).
    if (divisor->numel() != 1) throw std::runtime_error("integer division by a -1 element");
    Expr out = rounding == Rounding::kRemainder
                   ? bb.Op("multiply", x, bb.Op("zeros_like", y, dtype))
                   : bb.Op("multiply", bb.Op("negative", x), bb.Op("ones_like", y, dtype));
    ctx.SetOutput(0, out);
    return;
  }
  // TVM's integer divide truncates (C), floor_divide / floor_mod round down.
  const char* op = rounding == Rounding::kTrunc   ? "divide"
                   : rounding == Rounding::kFloor ? "floor_divide"
                                                  : "floor_mod";
  ctx.SetOutput(0, bb.Op(op, x, y));
}

void DivideWithMode(ConvertContext& ctx) {
  if (ctx.IsNone(2)) return Divide(ctx);
  const std::string& mode = ctx.Constant(2).toStringRef();
  if (mode == "trunc") return RoundingDivide(ctx, Rounding::kTrunc);
  if (mode == "floor") return RoundingDivide(ctx, Rounding::kFloor);
  throw std::runtime_error("div rounding_mode '" + mode + "'");
}

}  // namespace

TORCH_TVM_CONVERTERS(arithmetic) {
  for (const char* s : {"aten::add.Tensor", "aten::add.Scalar"}) {
    reg.Register(s, [](ConvertContext& c) { AddLike(c, "add", false); });
  }
  for (const char* s : {"aten::sub.Tensor", "aten::sub.Scalar"}) {
    reg.Register(s, [](ConvertContext& c) { AddLike(c, "subtract", false); });
  }
  for (const char* s : {"aten::rsub.Tensor", "aten::rsub.Scalar"}) {
    reg.Register(s, [](ConvertContext& c) { AddLike(c, "subtract", true); });
  }
  for (const char* s : {"aten::mul.Tensor", "aten::mul.Scalar"}) {
    reg.Register(s, [](ConvertContext& c) { Binary(c, "multiply"); });
  }
  for (const char* s : {"aten::div.Tensor", "aten::div.Scalar"}) {
    reg.Register(s, Divide);
  }
  reg.Register("aten::addcmul", [](ConvertContext& c) { AddCombined(c, "multiply"); },
               FloatOperands);
  reg.Register("aten::addcdiv", [](ConvertContext& c) { AddCombined(c, "divide"); },
               FloatOperands);
  for (const char* s : {"aten::div.Tensor_mode", "aten::div.Scalar_mode"}) {
    reg.Register(s, DivideWithMode, IntegerDivisorCheck);
  }
  for (const char* s : {"aten::floor_divide", "aten::floor_divide.Scalar"}) {
    reg.Register(s, [](ConvertContext& c) { RoundingDivide(c, Rounding::kFloor); },
                 IntegerDivisorCheck);
  }
  for (const char* s : {"aten::remainder.Tensor", "aten::remainder.Scalar",
                        "aten::remainder.Scalar_Tensor"}) {
    reg.Register(s, [](ConvertContext& c) { RoundingDivide(c, Rounding::kRemainder); },
                 IntegerDivisorCheck);
  }
}

}  // namespace torch_tvm::convert
