// Convolutions: 1d and 2d (groups, dilation, int or "same"/"valid" padding)
// and transposed 2d in TVM (the 2d ones reach oneDNN, torch_tvm/_offload.py);
// 3d and transposed 1d/3d through ATen's kernel (an extern call inside the
// group: TVM has no fast kernel for them), from every aten spelling
// TorchScript produces.
#include <ATen/ATen.h>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

std::vector<int64_t> Expand(std::vector<int64_t> v, size_t n) {
  if (v.size() == 1 && n > 1) v.assign(n, v[0]);
  if (v.size() != n) throw std::runtime_error("expected " + std::to_string(n) + " values");
  return v;
}

struct ConvParams {
  std::vector<int64_t> stride, pad_before, pad_after, dilation, output_padding;
  int64_t groups = 1;
  bool transposed = false;
};

// at::convolution as an extern kernel (csrc/kernels/aten_kernels.cpp).
void EmitAtenConv(ConvertContext& ctx, const ConvParams& p, size_t bias_index) {
  RelaxBuilder& bb = ctx.bb;
  TensorInfo x = ctx.Info(0), w = ctx.Info(1);
  size_t n = w.ndim() - 2;
  if (x.ndim() != w.ndim()) throw std::runtime_error("convolution expects a batched input");
  if (p.pad_before != p.pad_after) {
    throw std::runtime_error("asymmetric padding of a 3d or transposed 1d convolution");
  }
  std::vector<int64_t> params = {p.transposed ? 1 : 0, p.groups, static_cast<int64_t>(n)};
  for (const auto* v : {&p.stride, &p.pad_before, &p.dilation}) {
    params.insert(params.end(), v->begin(), v->end());
  }
  std::vector<int64_t> output_padding = p.transposed ? p.output_padding
                                                     : std::vector<int64_t>(n, 0);
  params.insert(params.end(), output_padding.begin(), output_padding.end());
  std::vector<int64_t> out = {x.shape[0], p.transposed ? w.shape[1] * p.groups : w.shape[0]};
  for (size_t i = 0; i < n; ++i) {
    int64_t in = x.shape[2 + i], k = p.dilation[i] * (w.shape[2 + i] - 1) + 1;
    out.push_back(p.transposed
                      ? (in - 1) * p.stride[i] - 2 * p.pad_before[i] + k + output_padding[i]
                      : (in + 2 * p.pad_before[i] - k) / p.stride[i] + 1);
    if (out.back() <= 0) throw std::runtime_error("convolution output would be empty");
  }
  Expr bias = ctx.IsNone(bias_index) ? bb.Constant(at::zeros({0}, at::kFloat))
                                     : CastTo(bb, ctx.Tensor(bias_index), x.dtype);
  ctx.SetOutput(0, bb.Emit(bb.CallExtern("torch_tvm.kernels.aten_convolution",
                                         {ctx.Tensor(0), ctx.Tensor(1), bias,
                                          bb.Constant(at::tensor(params, at::kLong))},
                                         out, x.dtype)));
}

void EmitConv(ConvertContext& ctx, const ConvParams& p, size_t bias_index) {
  RelaxBuilder& bb = ctx.bb;
  Expr x = ctx.Tensor(0), w = ctx.Tensor(1);
  int64_t spatial = bb.InfoOf(w).ndim() - 2;
  if (spatial == 3 || (p.transposed && spatial == 1)) return EmitAtenConv(ctx, p, bias_index);
  if (spatial != 1 && spatial != 2) throw std::runtime_error("only 1d, 2d and 3d convolution");
  std::vector<int64_t> padding = p.pad_before;
  padding.insert(padding.end(), p.pad_after.begin(), p.pad_after.end());
  Expr y;
  if (p.transposed) {
    if (spatial != 2) throw std::runtime_error("only 2d transposed convolution");
    y = bb.Op("nn.conv2d_transpose", x, w, IntArray(p.stride), IntArray(padding),
              IntArray(p.output_padding), IntArray(p.dilation), p.groups, String("NCHW"),
              String("IOHW"), String("NCHW"), nullptr);
  } else if (spatial == 2) {
    y = bb.Op("nn.conv2d", x, w, IntArray(p.stride), IntArray(padding), IntArray(p.dilation),
              p.groups, String("NCHW"), String("OIHW"), String("NCHW"), nullptr);
  } else {
    y = bb.Op("nn.conv1d", x, w, IntArray(p.stride), IntArray(padding), IntArray(p.dilation),
              p.groups, String("NCW"), String("OIW"), String("NCW"), nullptr);
  }
  if (!ctx.IsNone(bias_index)) {
    std::vector<int64_t> shape(spatial + 2, 1);
    shape[1] = -1;
    y = bb.Op("add", y, bb.Op("reshape", ctx.Tensor(bias_index), IntArray(shape)));
  }
  ctx.SetOutput(0, y);
}

int64_t Spatial(ConvertContext& ctx) { return ctx.Info(1).ndim() - 2; }

// aten::_convolution / aten::convolution:
// (input, weight, bias, stride, padding, dilation, transposed, output_padding, groups, ...)
void Convolution(ConvertContext& ctx) {
  size_t n = Spatial(ctx);
  ConvParams p;
  p.stride = Expand(ctx.Ints(3), n);
  p.pad_before = p.pad_after = Expand(ctx.Ints(4), n);
  p.dilation = Expand(ctx.Ints(5), n);
  p.transposed = ctx.Bool(6);
  p.output_padding = Expand(ctx.Ints(7), n);
  p.groups = ctx.Int(8);
  EmitConv(ctx, p, 2);
}

// aten::conv1d / conv2d: (input, weight, bias, stride, padding, dilation, groups);
// the .padding overloads take padding as "same" or "valid".
void ConvNd(ConvertContext& ctx) {
  size_t n = Spatial(ctx);
  ConvParams p;
  p.stride = Expand(ctx.Ints(3), n);
  p.dilation = Expand(ctx.Ints(5), n);
  p.groups = ctx.Int(6);
  const auto& pad = ctx.Constant(4);
  if (pad.isString()) {
    std::vector<int64_t> kernel = ctx.Info(1).shape;
    p.pad_before.assign(n, 0);
    p.pad_after.assign(n, 0);
    if (pad.toStringRef() == "same") {
      for (size_t i = 0; i < n; ++i) {
        int64_t total = p.dilation[i] * (kernel[2 + i] - 1);
        p.pad_before[i] = total / 2;
        p.pad_after[i] = total - total / 2;
      }
    } else if (pad.toStringRef() != "valid") {
      throw std::runtime_error("unknown padding mode " + pad.toStringRef());
    }
  } else {
    p.pad_before = p.pad_after = Expand(ctx.Ints(4), n);
  }
  EmitConv(ctx, p, 2);
}

// aten::conv_transpose2d.input:
// (input, weight, bias, stride, padding, output_padding, groups, dilation)
void ConvTranspose2d(ConvertContext& ctx) {
  ConvParams p;
  p.transposed = true;
  p.stride = Expand(ctx.Ints(3), 2);
  p.pad_before = p.pad_after = Expand(ctx.Ints(4), 2);
  p.output_padding = Expand(ctx.Ints(5), 2);
  p.groups = ctx.Int(6);
  p.dilation = Expand(ctx.Ints(7), 2);
  EmitConv(ctx, p, 2);
}

}  // namespace

TORCH_TVM_CONVERTERS(convolution) {
  reg.Register("aten::_convolution", Convolution);
  reg.Register("aten::convolution", Convolution);
  // aten::_convolution_mode is what tracing records for padding="same"/"valid".
  for (const char* s : {"aten::conv1d", "aten::conv2d", "aten::conv3d", "aten::conv1d.padding",
                        "aten::conv2d.padding", "aten::conv3d.padding",
                        "aten::_convolution_mode"}) {
    reg.Register(s, ConvNd);
  }
  reg.Register("aten::conv_transpose2d.input", ConvTranspose2d);
}

}  // namespace torch_tvm::convert
