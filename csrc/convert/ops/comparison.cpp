// Comparisons (eq, ne, lt, le, gt, ge), logical and bitwise ops, where,
// masked_fill, and the NaN-keeping or NaN-ignoring binary max/min family
// (maximum, minimum, max.other, min.other, fmax, fmin, clamp with tensor bounds).
#include <stdexcept>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// a <op> b in the promoted dtype, a bool tensor.
void Compare(ConvertContext& ctx, const std::string& op) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  RelaxBuilder& bb = ctx.bb;
  std::string dtype = bb.InfoOf(x).dtype;
  if (op == "not_equal" && IsFloatDType(dtype)) {
    // NaN != anything is true; TVM's float `!=` is an ordered compare (and
    // its simplifier turns !(a == b) into a != b).
    Expr either_nan = bb.Op("logical_or", bb.Op("isnan", x), bb.Op("isnan", y));
    ctx.SetOutput(0, bb.Op("logical_or", bb.Op("not_equal", x, y), either_nan));
    return;
  }
  if (dtype == "bool") {
    // TVM emits a float compare for i1 operands (LLVM rejects it), and an
    // ordered compare of i1 would be signed: compare 0/1 bytes.
    x = CastTo(bb, x, "uint8");
    y = CastTo(bb, y, "uint8");
  }
  ctx.SetOutput(0, bb.Op(op, x, y));
}

void Logical(ConvertContext& ctx, const char* op) {
  ctx.SetOutput(0, ctx.bb.Op(op, ToBool(ctx.bb, ctx.Tensor(0)), ToBool(ctx.bb, ctx.Tensor(1))));
}

// bitwise and/or/xor of integer or bool tensors (bool: the logical op).
void Bitwise(ConvertContext& ctx, const std::string& op) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (IsFloatDType(dtype)) throw std::runtime_error("bitwise " + op + " of " + dtype + " tensors");
  ctx.SetOutput(0, ctx.bb.Op((dtype == "bool" ? "logical_" : "bitwise_") + op, x, y));
}

// where(cond, a, b): a and b promoted together (tensors or scalars).
void Where(ConvertContext& ctx) {
  std::string dtype;
  if (!ctx.IsTensor(1) && !ctx.IsTensor(2)) {
    // Two Python scalars: result_type of two wrapped numbers.
    const auto &a = ctx.Constant(1), &b = ctx.Constant(2);
    if (a.isDouble() || b.isDouble()) {
      dtype = DefaultFloatDType();
    } else {
      dtype = a.isBool() && b.isBool() ? "bool" : "int64";
    }
  } else {
    dtype = PromotedDType(ctx, 1, 2);
  }
  auto operand = [&](size_t i) {
    return ctx.IsTensor(i) ? CastTo(ctx.bb, ctx.Tensor(i), dtype) : ScalarOf(ctx, i, dtype);
  };
  Expr cond = ctx.Tensor(0);
  if (ctx.bb.InfoOf(cond).dtype != "bool") {
    throw std::runtime_error("where expected a bool condition, got " +
                             ctx.bb.InfoOf(cond).dtype);
  }
  Expr out = ctx.bb.Op("where", cond, operand(1), operand(2));
  // Two scalar branches take the condition's shape (where broadcasts them).
  ctx.SetOutput(0, out);
}

// masked_fill(self, mask, value): self's dtype, value cast to it.
void MaskedFill(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0), mask = ctx.Tensor(1);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  if (ctx.bb.InfoOf(mask).dtype != "bool") {
    throw std::runtime_error("masked_fill only supports a bool mask");
  }
  Expr value;
  if (ctx.IsTensor(2)) {
    if (ctx.Info(2).ndim() != 0) {
      throw std::runtime_error("masked_fill only supports a 0-dimensional value tensor");
    }
    value = CastTo(ctx.bb, ctx.Tensor(2), dtype);
  } else {
    value = ScalarOf(ctx, 2, dtype);
  }
  Expr out = ctx.bb.Op("where", mask, value, x);
  if (ctx.bb.InfoOf(out).shape != ctx.bb.InfoOf(x).shape) {
    throw std::runtime_error("masked_fill: the mask does not broadcast to the input's shape");
  }
  ctx.SetOutput(0, out);
}

// maximum / minimum (NaN from either side wins) and fmax / fmin (a NaN loses).
void MinMax(ConvertContext& ctx, bool is_max, bool ignore_nan) {
  auto [x, y] = BinaryOperands(ctx, 0, 1);
  RelaxBuilder& bb = ctx.bb;
  Expr out = NanKeepingMinMax(bb, x, y, is_max);
  if (ignore_nan && IsFloatDType(bb.InfoOf(x).dtype)) {
    out = bb.Op("where", bb.Op("isnan", x), y, bb.Op("where", bb.Op("isnan", y), x, out));
  }
  ctx.SetOutput(0, out);
}

// clamp(self, min, max) with optional tensor bounds: minimum(maximum(x, lo), hi)
// in the promoted dtype, a NaN in x or a bound kept (ATen's vectorised kernel).
void ClampTensor(ConvertContext& ctx, std::optional<size_t> lo, std::optional<size_t> hi) {
  std::vector<size_t> ids = {0};
  if (lo && ctx.IsNone(*lo)) lo.reset();
  if (hi && ctx.IsNone(*hi)) hi.reset();
  if (!lo && !hi) throw std::runtime_error("clamp: at least one of min or max must be given");
  if (lo) ids.push_back(*lo);
  if (hi) ids.push_back(*hi);
  std::string dtype = ResultDType(ctx, ids);
  if (dtype == "bool") throw std::runtime_error("clamp of bool tensors");
  auto operand = [&](size_t i) {
    return ctx.IsTensor(i) ? CastTo(ctx.bb, ctx.Tensor(i), dtype) : ScalarOf(ctx, i, dtype);
  };
  Expr x = operand(0);
  if (lo) x = NanKeepingMinMax(ctx.bb, x, operand(*lo), true);
  if (hi) x = NanKeepingMinMax(ctx.bb, x, operand(*hi), false);
  ctx.SetOutput(0, x);
}

}  // namespace

TORCH_TVM_CONVERTERS(comparison) {
  const std::pair<const char*, const char*> compares[] = {
      {"eq", "equal"}, {"ne", "not_equal"}, {"lt", "less"},
      {"le", "less_equal"}, {"gt", "greater"}, {"ge", "greater_equal"}};
  for (const auto& [name, op] : compares) {
    std::string relax_op = op;
    for (const char* overload : {".Tensor", ".Scalar"}) {
      reg.Register(std::string("aten::") + name + overload,
                   [relax_op](ConvertContext& c) { Compare(c, relax_op); });
    }
  }
  reg.Register("aten::logical_not", [](ConvertContext& c) {
    c.SetOutput(0, c.bb.Op("logical_not", ToBool(c.bb, c.Tensor(0))));
  });
  reg.Register("aten::logical_and", [](ConvertContext& c) { Logical(c, "logical_and"); });
  reg.Register("aten::logical_or", [](ConvertContext& c) { Logical(c, "logical_or"); });
  reg.Register("aten::logical_xor", [](ConvertContext& c) { Logical(c, "logical_xor"); });
  reg.Register("aten::bitwise_not", [](ConvertContext& c) {
    Expr x = c.Tensor(0);
    std::string dtype = c.bb.InfoOf(x).dtype;
    if (IsFloatDType(dtype)) throw std::runtime_error("bitwise_not of " + dtype + " tensors");
    c.SetOutput(0, c.bb.Op(dtype == "bool" ? "logical_not" : "bitwise_not", x));
  });
  for (const char* op : {"and", "or", "xor"}) {
    std::string name = op;
    for (const std::string& key :
         {"aten::bitwise_" + name + ".Tensor", "aten::bitwise_" + name + ".Scalar",
          "aten::__" + name + "__.Tensor", "aten::__" + name + "__.Scalar"}) {
      reg.Register(key, [name](ConvertContext& c) { Bitwise(c, name); });
    }
  }
  for (const char* s :
       {"aten::where.self", "aten::where.ScalarOther", "aten::where.ScalarSelf", "aten::where.Scalar"}) {
    reg.Register(s, Where);
  }
  reg.Register("aten::masked_fill.Scalar", MaskedFill);
  reg.Register("aten::masked_fill.Tensor", MaskedFill);
  reg.Register("aten::maximum", [](ConvertContext& c) { MinMax(c, true, false); });
  reg.Register("aten::max.other", [](ConvertContext& c) { MinMax(c, true, false); });
  reg.Register("aten::minimum", [](ConvertContext& c) { MinMax(c, false, false); });
  reg.Register("aten::min.other", [](ConvertContext& c) { MinMax(c, false, false); });
  reg.Register("aten::fmax", [](ConvertContext& c) { MinMax(c, true, true); });
  reg.Register("aten::fmin", [](ConvertContext& c) { MinMax(c, false, true); });
  reg.Register("aten::clamp.Tensor", [](ConvertContext& c) { ClampTensor(c, 1, 2); });
  reg.Register("aten::clamp_min.Tensor", [](ConvertContext& c) { ClampTensor(c, 1, {}); });
  reg.Register("aten::clamp_max.Tensor", [](ConvertContext& c) { ClampTensor(c, {}, 1); });
}

}  // namespace torch_tvm::convert
