// 2d and 3d pooling: max and average (ceil_mode, count_include_pad) and
// adaptive average. 3d max pooling runs ATen's kernel (TVM's drops NaN).
#include <ATen/ATen.h>

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

std::vector<int64_t> Triple(std::vector<int64_t> v) {
  if (v.size() == 1) v.assign(3, v[0]);
  if (v.size() != 3) throw std::runtime_error("expected 1 or 3 values");
  return v;
}

void RequireNCDHW(ConvertContext& ctx) {
  if (ctx.Info(0).ndim() != 5) throw std::runtime_error("only batched NCDHW input is supported");
}

int64_t PooledSize(int64_t in, int64_t k, int64_t s, int64_t pad, int64_t d, bool ceil_mode) {
  int64_t span = in + 2 * pad - d * (k - 1) - 1;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // As ATen: the last window must start inside the input or its left padding.
  if (ceil_mode && (out - 1) * s >= in + pad) --out;
  return out;
}

// (self, kernel_size, stride, padding, dilation, ceil_mode)
void MaxPool3d(ConvertContext& ctx) {
  RequireNCDHW(ctx);
  TensorInfo x = ctx.Info(0);
  auto kernel = Triple(ctx.Ints(1));
  auto stride = ctx.Ints(2).empty() ? kernel : Triple(ctx.Ints(2));
  auto pad = Triple(ctx.Ints(3)), dilation = Triple(ctx.Ints(4));
  bool ceil_mode = ctx.Bool(5);
  std::vector<int64_t> params, out = {x.shape[0], x.shape[1]};
  for (const auto* v : {&kernel, &stride, &pad, &dilation}) params.insert(params.end(), v->begin(), v->end());
  params.push_back(ceil_mode ? 1 : 0);
  for (int i = 0; i < 3; ++i) {
    if (pad[i] * 2 > kernel[i]) throw std::runtime_error("pad should be at most half of kernel size");
    out.push_back(PooledSize(x.shape[2 + i], kernel[i], stride[i], pad[i], dilation[i], ceil_mode));
    if (out.back() <= 0) throw std::runtime_error("max_pool3d output would be empty");
  }
  ctx.SetOutput(0, ctx.bb.Emit(ctx.bb.CallExtern(
                       "torch_tvm.kernels.aten_max_pool3d",
                       {ctx.Tensor(0), ctx.bb.Constant(at::tensor(params, at::kLong))}, out,
                       x.dtype)));
}

// (self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
void AvgPool3d(ConvertContext& ctx) {
  RequireNCDHW(ctx);
  if (!ctx.IsNone(6)) throw std::runtime_error("divisor_override is not supported");
  auto kernel = Triple(ctx.Ints(1));
  auto stride = ctx.Ints(2).empty() ? kernel : Triple(ctx.Ints(2));
  auto pad = Triple(ctx.Ints(3));
  std::vector<int64_t> padding6 = pad;
  padding6.insert(padding6.end(), pad.begin(), pad.end());
  ctx.SetOutput(0, ctx.bb.Op("nn.avg_pool3d", ctx.Tensor(0), IntArray(kernel), IntArray(stride),
                             IntArray(padding6), IntArray({1, 1, 1}), ctx.Bool(4), ctx.Bool(5),
                             String("NCDHW"), nullptr));
}

void AdaptiveAvgPool3d(ConvertContext& ctx) {
  RequireNCDHW(ctx);
  ctx.SetOutput(0, ctx.bb.Op("nn.adaptive_avg_pool3d", ctx.Tensor(0),
                             IntArray(Triple(ctx.Ints(1))), String("NCDHW"), nullptr));
}

}  // namespace

TORCH_TVM_CONVERTERS(pooling) {
  reg.Register("aten::max_pool3d", MaxPool3d);
  reg.Register("aten::avg_pool3d", AvgPool3d);
  reg.Register("aten::adaptive_avg_pool3d", AdaptiveAvgPool3d);
  reg.Register("aten::max_pool2d", MaxPool2d);
  reg.Register("aten::avg_pool2d", AvgPool2d);
  reg.Register("aten::adaptive_avg_pool2d", AdaptiveAvgPool2d);
}

}  // namespace torch_tvm::convert
