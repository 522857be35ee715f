// 2d pooling: max and average (ceil_mode, count_include_pad) and adaptive
// average.
#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

std::vector<int64_t> Pair(std::vector<int64_t> v) {
  if (v.size() == 1) v.push_back(v[0]);
  if (v.size() != 2) throw std::runtime_error("expected 1 or 2 values");
  return v;
}

std::vector<int64_t> Padding4(const std::vector<int64_t>& p) {
  auto pp = Pair(p);
  return {pp[0], pp[1], pp[0], pp[1]};
}

void RequireNCHW(ConvertContext& ctx) {
  if (ctx.Info(0).ndim() != 4) throw std::runtime_error("only batched NCHW input is supported");
}

// (self, kernel_size, stride, padding, dilation, ceil_mode)
void MaxPool2d(ConvertContext& ctx) {
  RequireNCHW(ctx);
  auto kernel = Pair(ctx.Ints(1));
  auto stride = ctx.Ints(2).empty() ? kernel : Pair(ctx.Ints(2));
  ctx.SetOutput(0, ctx.bb.Op("nn.max_pool2d", ctx.Tensor(0), IntArray(kernel), IntArray(stride),
                             IntArray(Padding4(ctx.Ints(3))), IntArray(Pair(ctx.Ints(4))),
                             ctx.Bool(5), false, String("NCHW"), nullptr));
}

// (self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
void AvgPool2d(ConvertContext& ctx) {
  RequireNCHW(ctx);
  if (!ctx.IsNone(6)) throw std::runtime_error("divisor_override is not supported");
  auto kernel = Pair(ctx.Ints(1));
  auto stride = ctx.Ints(2).empty() ? kernel : Pair(ctx.Ints(2));
  ctx.SetOutput(0, ctx.bb.Op("nn.avg_pool2d", ctx.Tensor(0), IntArray(kernel), IntArray(stride),
                             IntArray(Padding4(ctx.Ints(3))), IntArray({1, 1}), ctx.Bool(4),
                             ctx.Bool(5), String("NCHW"), nullptr));
}

void AdaptiveAvgPool2d(ConvertContext& ctx) {
  RequireNCHW(ctx);
  ctx.SetOutput(0, ctx.bb.Op("nn.adaptive_avg_pool2d", ctx.Tensor(0), IntArray(Pair(ctx.Ints(1))),
                             String("NCHW"), nullptr));
}

}  // namespace

TORCH_TVM_CONVERTERS(pooling) {
  reg.Register("aten::max_pool2d", MaxPool2d);
  reg.Register("aten::avg_pool2d", AvgPool2d);
  reg.Register("aten::adaptive_avg_pool2d", AdaptiveAvgPool2d);
}

}  // namespace torch_tvm::convert
