// Shape arithmetic evaluated at compile time: aten::size and the int math a
// traced or scripted model does on sizes before a view/reshape. Every group
// is compiled for concrete shapes, so these are constants there; grouping
// them keeps a reshape in the same group as the tensor whose size it reads.
#include <ATen/ATen.h>
#include <ATen/ScalarOps.h>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

void SizeInt(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  int64_t d = NormalizeDim(ctx.Int(1), info.ndim());
  if (info.shape[d] < 0) throw std::runtime_error("symbolic dimension");
  ctx.SetOutputConstant(0, info.shape[d]);
}

void SizeList(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  ctx.SetOutputConstant(0, c10::List<int64_t>(info.shape));
}

template <typename F>
void IntBinary(ConvertContext& ctx, F f) {
  ctx.SetOutputConstant(0, f(ctx.Int(0), ctx.Int(1)));
}

int64_t FloorDiv(int64_t a, int64_t b) {
  if (b == 0) throw std::runtime_error("integer division by zero");
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

}  // namespace

TORCH_TVM_CONVERTERS(shape_arithmetic) {
  reg.RegisterShapeQuery("aten::size.int", SizeInt);
  reg.RegisterShapeQuery("aten::size", SizeList);
  // A traced `x.shape` used as a tensor (torchvision's detection transforms).
  reg.RegisterShapeQuery("aten::_shape_as_tensor", [](ConvertContext& c) {
    c.SetOutputConstant(0, at::tensor(c.Info(0).shape, at::kLong));
  });
  reg.RegisterShapeQuery("aten::numel", [](ConvertContext& c) {
    int64_t n = 1;
    for (int64_t d : c.Info(0).shape) n *= d;
    c.SetOutputConstant(0, n);
  });
  reg.RegisterShapeQuery("aten::dim", [](ConvertContext& c) { c.SetOutputConstant(0, c.Info(0).ndim()); });
  reg.RegisterCompileTime("aten::add.int", [](ConvertContext& c) {
    IntBinary(c, [](int64_t a, int64_t b) { return a + b; });
  });
  reg.RegisterCompileTime("aten::sub.int", [](ConvertContext& c) {
    IntBinary(c, [](int64_t a, int64_t b) { return a - b; });
  });
  reg.RegisterCompileTime("aten::mul.int", [](ConvertContext& c) {
    IntBinary(c, [](int64_t a, int64_t b) { return a * b; });
  });
  reg.RegisterCompileTime("aten::floordiv.int", [](ConvertContext& c) { IntBinary(c, FloorDiv); });
  // Traced graphs wrap sizes as 0-d tensors and unwrap them again.
  reg.RegisterCompileTime("prim::NumToTensor.Scalar", [](ConvertContext& c) {
    // As eager: an int gives a Long tensor, a float a Double one.
    c.SetOutputConstant(0, c10::scalar_to_tensor(c.Constant(0).toScalar()));
  });
  reg.RegisterCompileTime("aten::Int.Tensor", [](ConvertContext& c) {
    const auto& v = c.Constant(0);
    if (!v.isTensor()) throw std::runtime_error("aten::Int of a computed tensor");
    c.SetOutputConstant(0, v.toTensor().item<int64_t>());
  });
}

}  // namespace torch_tvm::convert
