// Resampling and rearrangement: pixel_shuffle / pixel_unshuffle,
// upsample_nearest2d and upsample_bilinear2d (both overloads each).
//
// The source indices (and bilinear weights) depend only on shapes and scale
// arguments, so they are computed at conversion as compile-time constants,
// with eager's own arithmetic: nearest runs ATen's kernel on an iota (the
// output is the source index of every output pixel, floor(dst * scale) in
// float as eager, not 'nearest-exact'); bilinear repeats ATen's
// area_pixel_compute_source_index in float. The gathers read constant,
// in-range indices.
#include <ATen/ATen.h>

#include <cmath>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// pixel_shuffle(self, r): (*, C r^2, H, W) -> (*, C, H r, W r).
void PixelShuffle(ConvertContext& ctx, bool inverse) {
  TensorInfo info = ctx.Info(0);
  int64_t r = ctx.Int(1), nd = info.ndim();
  if (nd < 3 || r <= 0) throw std::runtime_error("pixel_shuffle needs >= 3 dims and r > 0");
  std::vector<int64_t> lead(info.shape.begin(), info.shape.end() - 3);
  int64_t c = info.shape[nd - 3], h = info.shape[nd - 2], w = info.shape[nd - 1];
  int64_t nl = static_cast<int64_t>(lead.size());
  std::vector<int64_t> split = lead, perm, out = lead;
  for (int64_t i = 0; i < nl; ++i) perm.push_back(i);
  if (!inverse) {
    if (c % (r * r)) throw std::runtime_error("pixel_shuffle: channels not divisible by r^2");
    int64_t oc = c / (r * r);
    split.insert(split.end(), {oc, r, r, h, w});
    for (int64_t p : {0, 3, 1, 4, 2}) perm.push_back(nl + p);
    out.insert(out.end(), {oc, h * r, w * r});
  } else {
    if (h % r || w % r) throw std::runtime_error("pixel_unshuffle: size not divisible by r");
    split.insert(split.end(), {c, h / r, r, w / r, r});
    for (int64_t p : {0, 2, 4, 1, 3}) perm.push_back(nl + p);
    out.insert(out.end(), {c * r * r, h / r, w / r});
  }
  auto& bb = ctx.bb;
  Expr x = bb.Op("reshape", ctx.Tensor(0), IntArray(split));
  x = bb.Op("permute_dims", x, IntArray(perm));
  ctx.SetOutput(0, bb.Op("reshape", x, IntArray(out)));
}

std::optional<double> OptDouble(const ConvertContext& ctx, size_t i) {
  if (ctx.IsNone(i)) return std::nullopt;
  return ctx.Double(i);
}

std::optional<std::vector<double>> OptDoubles(const ConvertContext& ctx, size_t i) {
  if (ctx.IsNone(i)) return std::nullopt;
  return ctx.Constant(i).toDoubleVector();
}

std::optional<std::vector<int64_t>> OptInts(const ConvertContext& ctx, size_t i) {
  if (ctx.IsNone(i)) return std::nullopt;
  return ctx.Ints(i);
}

// upsample_nearest2d(self, output_size, scales_h?, scales_w?) and
// .vec(input, output_size?, scale_factors?): one take over the flattened
// H*W plane, with the indices eager's kernel computes for an iota.
void UpsampleNearest(ConvertContext& ctx, bool vec) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() != 4) throw std::runtime_error("upsample_nearest2d needs a 4-d input");
  int64_t n = info.shape[0], c = info.shape[1], h = info.shape[2], w = info.shape[3];
  at::Tensor iota = at::arange(h * w, at::TensorOptions().dtype(at::kDouble)).reshape({1, 1, h, w});
  at::Tensor src;
  if (vec) {
    auto size = OptInts(ctx, 1);
    auto scales = OptDoubles(ctx, 2);
    src = at::upsample_nearest2d(iota, size ? c10::optional<at::IntArrayRef>(*size) : c10::nullopt,
                                 scales ? c10::optional<at::ArrayRef<double>>(*scales)
                                        : c10::nullopt);
  } else {
    src = at::upsample_nearest2d(iota, ctx.Ints(1), OptDouble(ctx, 2), OptDouble(ctx, 3));
  }
  int64_t oh = src.size(2), ow = src.size(3);
  at::Tensor idx = src.reshape({oh, ow}).to(at::kLong).contiguous();
  auto& bb = ctx.bb;
  Expr x = bb.Op("reshape", ctx.Tensor(0), IntArray({n, c, h * w}));
  Expr y = bb.Op("take", x, bb.Constant(idx), 2, std::string("fast"));
  ctx.SetOutput(0, bb.Op("reshape", y, IntArray({n, c, oh, ow})));
}

// ATen's source indices and weights of linear interpolation along one axis
// (area_pixel_compute_scale / _source_index, guard_index_and_lambda), in float.
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> l0, l1;
};

Taps LinearTaps(int64_t in, int64_t out, bool align_corners, std::optional<double> scale) {
  float ratio;
  if (align_corners) {
    ratio = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
  } else {
    ratio = (scale && *scale > 0) ? static_cast<float>(1.0 / *scale)
                                  : static_cast<float>(in) / static_cast<float>(out);
  }
  Taps t;
  for (int64_t o = 0; o < out; ++o) {
    int64_t a, b;
    float la, lb;
    if (in == out) {
      a = b = o;
      la = 1.0f;
      lb = 0.0f;
    } else {
      float real = align_corners ? ratio * static_cast<float>(o)
                                 : ratio * (static_cast<float>(o) + 0.5f) - 0.5f;
      if (!align_corners && real < 0) real = 0.0f;
      a = std::min(static_cast<int64_t>(std::floor(real)), in - 1);
      lb = std::min(std::max(real - static_cast<float>(a), 0.0f), 1.0f);
      b = a + (a < in - 1 ? 1 : 0);
      la = 1.0f - lb;
    }
    t.i0.push_back(a);
    t.i1.push_back(b);
    t.l0.push_back(la);
    t.l1.push_back(lb);
  }
  return t;
}

// x[.., i0, ..] * l0 + x[.., i1, ..] * l1 along `axis` (the last or the one before).
Expr Interpolate(RelaxBuilder& bb, const Expr& x, int64_t axis, const Taps& t,
                 const std::string& dtype) {
  int64_t out = static_cast<int64_t>(t.i0.size());
  std::vector<int64_t> wshape = {out};
  if (axis == 2) wshape.push_back(1);
  auto weights = [&](const std::vector<float>& l) {
    at::Tensor tw = at::tensor(l).reshape(wshape);
    return bb.Constant(tw.to(dtype == "float64" ? at::kDouble : at::kFloat).contiguous());
  };
  auto index = [&](const std::vector<int64_t>& i) { return bb.Constant(at::tensor(i)); };
  Expr a = bb.Op("take", x, index(t.i0), axis, std::string("fast"));
  Expr b = bb.Op("take", x, index(t.i1), axis, std::string("fast"));
  return bb.Op("add", bb.Op("multiply", a, weights(t.l0)), bb.Op("multiply", b, weights(t.l1)));
}

// upsample_bilinear2d(self, output_size, align_corners, scales_h?, scales_w?)
// and .vec(input, output_size?, align_corners, scale_factors?): along W,
// then along H, as eager's separable kernel.
void UpsampleBilinear(ConvertContext& ctx, bool vec) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() != 4) throw std::runtime_error("upsample_bilinear2d needs a 4-d input");
  if (info.dtype != "float32" && info.dtype != "float64") {
    throw std::runtime_error("upsample_bilinear2d of a " + info.dtype + " tensor");
  }
  int64_t h = info.shape[2], w = info.shape[3], oh, ow;
  bool align = ctx.Bool(2);
  std::optional<double> sh, sw;
  if (vec) {
    auto size = OptInts(ctx, 1);
    auto scales = OptDoubles(ctx, 3);
    if (size) {
      if (size->size() != 2) throw std::runtime_error("upsample: output size must have 2 values");
      oh = (*size)[0];
      ow = (*size)[1];
    } else if (scales && scales->size() == 2) {
      oh = static_cast<int64_t>(std::floor(static_cast<double>(h) * (*scales)[0]));
      ow = static_cast<int64_t>(std::floor(static_cast<double>(w) * (*scales)[1]));
    } else {
      throw std::runtime_error("upsample: neither output size nor 2 scale factors");
    }
    if (scales && scales->size() == 2) {
      sh = (*scales)[0];
      sw = (*scales)[1];
    }
  } else {
    auto size = ctx.Ints(1);
    if (size.size() != 2) throw std::runtime_error("upsample: output size must have 2 values");
    oh = size[0];
    ow = size[1];
    sh = OptDouble(ctx, 3);
    sw = OptDouble(ctx, 4);
  }
  if (oh <= 0 || ow <= 0 || h <= 0 || w <= 0) throw std::runtime_error("upsample: empty size");
  Expr x = Interpolate(ctx.bb, ctx.Tensor(0), 3, LinearTaps(w, ow, align, sw), info.dtype);
  ctx.SetOutput(0, Interpolate(ctx.bb, x, 2, LinearTaps(h, oh, align, sh), info.dtype));
}

}  // namespace

TORCH_TVM_CONVERTERS(resample) {
  reg.Register("aten::pixel_shuffle", [](ConvertContext& c) { PixelShuffle(c, false); });
  reg.Register("aten::pixel_unshuffle", [](ConvertContext& c) { PixelShuffle(c, true); });
  reg.Register("aten::upsample_nearest2d", [](ConvertContext& c) { UpsampleNearest(c, false); });
  reg.Register("aten::upsample_nearest2d.vec", [](ConvertContext& c) { UpsampleNearest(c, true); });
  reg.Register("aten::upsample_bilinear2d", [](ConvertContext& c) { UpsampleBilinear(c, false); });
  reg.Register("aten::upsample_bilinear2d.vec",
               [](ConvertContext& c) { UpsampleBilinear(c, true); });
}

}  // namespace torch_tvm::convert
