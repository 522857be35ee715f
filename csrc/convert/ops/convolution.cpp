// Convolutions: 1d and 2d (groups, dilation, int or "same"/"valid" padding)
// and transposed 2d, from every aten spelling TorchScript produces.
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

void EmitConv(ConvertContext& ctx, const ConvParams& p, size_t bias_index) {
  RelaxBuilder& bb = ctx.bb;
  Expr x = ctx.Tensor(0), w = ctx.Tensor(1);
  int64_t spatial = bb.InfoOf(w).ndim() - 2;
  if (spatial != 1 && spatial != 2) throw std::runtime_error("only 1d and 2d convolution");
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
  for (const char* s : {"aten::conv1d", "aten::conv2d", "aten::conv1d.padding",
                        "aten::conv2d.padding", "aten::_convolution_mode"}) {
    reg.Register(s, ConvNd);
  }
  reg.Register("aten::conv_transpose2d.input", ConvTranspose2d);
}

}  // namespace torch_tvm::convert
