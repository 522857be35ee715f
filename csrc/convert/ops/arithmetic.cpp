// add / sub / mul / div / rsub, tensor-tensor and tensor-scalar, with alpha.
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
}

}  // namespace torch_tvm::convert
