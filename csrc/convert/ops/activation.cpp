// Pointwise activations: relu, leaky_relu, threshold, clamp/hardtanh, sigmoid, tanh,
// gelu, silu, hardswish, hardsigmoid.
#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

Expr Scalar(ConvertContext& ctx, const Expr& like, double v) {
  return ctx.bb.ScalarConstant(v, ctx.bb.InfoOf(like).dtype);
}

// clamp(x, lo, hi) with either bound optional. The bound goes first: TVM's
// max/min is `a > b ? a : b`, which keeps a NaN in b, so x's NaN propagates
// as in torch (tests/convert/test_nan.py).
Expr Clamp(ConvertContext& ctx, Expr x, std::optional<double> lo, std::optional<double> hi) {
  if (lo) x = ctx.bb.Op("maximum", Scalar(ctx, x, *lo), x);
  if (hi) x = ctx.bb.Op("minimum", Scalar(ctx, x, *hi), x);
  return x;
}

std::optional<double> OptionalScalar(ConvertContext& ctx, size_t i) {
  if (ctx.IsNone(i)) return std::nullopt;
  return ctx.Double(i);
}

// Input 0 in the dtype clamp promotes to with its non-None bounds (an int
// tensor clamped by a float bound is float, as eager).
Expr ClampInput(ConvertContext& ctx, std::vector<size_t> bounds) {
  std::vector<size_t> ids = {0};
  for (size_t i : bounds) {
    if (!ctx.IsNone(i)) ids.push_back(i);
  }
  return CastTo(ctx.bb, ctx.Tensor(0), ResultDType(ctx, ids));
}

void Unary(ConvertContext& ctx, const char* op) { ctx.SetOutput(0, ctx.bb.Op(op, ctx.Tensor(0))); }

// hardsigmoid(x) = clamp(x / 6 + 1/2, 0, 1)
Expr HardSigmoid(ConvertContext& ctx, const Expr& x) {
  Expr y = ctx.bb.Op("add", ctx.bb.Op("divide", x, Scalar(ctx, x, 6.0)), Scalar(ctx, x, 0.5));
  return Clamp(ctx, y, 0.0, 1.0);
}

}  // namespace

TORCH_TVM_CONVERTERS(activation) {
  reg.Register("aten::relu", [](ConvertContext& c) { Unary(c, "nn.relu"); });
  reg.Register("aten::sigmoid", [](ConvertContext& c) { Unary(c, "sigmoid"); });
  reg.Register("aten::tanh", [](ConvertContext& c) { Unary(c, "tanh"); });
  reg.Register("aten::silu", [](ConvertContext& c) { Unary(c, "nn.silu"); });
  reg.Register("aten::gelu", [](ConvertContext& c) {
    std::string approx = c.NumInputs() > 1 ? c.Constant(1).toStringRef() : "none";
    Unary(c, approx == "tanh" ? "nn.gelu_tanh" : "nn.gelu");
  });
  reg.Register("aten::threshold", [](ConvertContext& c) {
    // y = x if x > threshold else value
    Expr x = c.Tensor(0);
    Expr mask = c.bb.Op("greater", x, Scalar(c, x, c.Double(1)));
    c.SetOutput(0, c.bb.Op("where", mask, x, Scalar(c, x, c.Double(2))));
  });
  reg.Register("aten::clamp", [](ConvertContext& c) {
    c.SetOutput(0, Clamp(c, ClampInput(c, {1, 2}), OptionalScalar(c, 1), OptionalScalar(c, 2)));
  });
  reg.Register("aten::clamp_min", [](ConvertContext& c) {
    c.SetOutput(0, Clamp(c, ClampInput(c, {1}), c.Double(1), std::nullopt));
  });
  reg.Register("aten::clamp_max", [](ConvertContext& c) {
    c.SetOutput(0, Clamp(c, ClampInput(c, {1}), std::nullopt, c.Double(1)));
  });
  reg.Register("aten::hardtanh", [](ConvertContext& c) {
    c.SetOutput(0, Clamp(c, c.Tensor(0), c.Double(1), c.Double(2)));
  });
  reg.Register("aten::relu6", [](ConvertContext& c) {
    c.SetOutput(0, Clamp(c, c.Tensor(0), 0.0, 6.0));
  });
  reg.Register("aten::neg", [](ConvertContext& c) { Unary(c, "negative"); });
  // leaky_relu(x, negative_slope=0.01) = x if x > 0 else slope * x (NaN kept)
  reg.Register("aten::leaky_relu", [](ConvertContext& c) {
    double slope = c.NumInputs() > 1 ? c.Double(1) : 0.01;
    c.SetOutput(0, c.bb.Op("nn.leakyrelu", c.Tensor(0), slope));
  });
  reg.Register("aten::hardsigmoid", [](ConvertContext& c) {
    c.SetOutput(0, HardSigmoid(c, c.Tensor(0)));
  });
  reg.Register("aten::hardswish", [](ConvertContext& c) {
    Expr x = c.Tensor(0);
    c.SetOutput(0, c.bb.Op("multiply", x, HardSigmoid(c, x)));
  });
}

}  // namespace torch_tvm::convert
