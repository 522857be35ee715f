// Inference normalisation: batch_norm (running statistics, or batch statistics
// when there are none), layer_norm, group_norm. Missing affine parameters
// become ones / zeros.
#include <ATen/ATen.h>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

Expr Filled(ConvertContext& ctx, const std::vector<int64_t>& shape, double value,
            const std::string& dtype) {
  auto t = at::full(shape, value, at::TensorOptions().dtype(at::kFloat));
  return CastTo(ctx.bb, ctx.bb.Constant(t), dtype);
}

Expr OptionalOr(ConvertContext& ctx, size_t i, const std::vector<int64_t>& shape, double value,
                const std::string& dtype) {
  return ctx.IsNone(i) ? Filled(ctx, shape, value, dtype) : ctx.Tensor(i);
}

// batch_norm in training mode with no running statistics: a pure function,
// normalising by the batch's own statistics (every axis but 1, biased
// variance). timm's StdConv2d standardises its weights this way, so inside a
// group with the weights bound as constants it folds away at compile time.
Expr BatchStatisticsNorm(ConvertContext& ctx, const Expr& x, const TensorInfo& info,
                         const Expr& gamma, const Expr& beta) {
  RelaxBuilder& bb = ctx.bb;
  std::vector<int64_t> axes{0};
  std::vector<int64_t> affine_shape(info.ndim(), 1);
  affine_shape.at(1) = info.shape.at(1);
  for (int64_t i = 2; i < info.ndim(); ++i) axes.push_back(i);
  Expr centred = bb.Op("subtract", x, bb.Op("mean", x, IntArray(axes), true));
  Expr var = bb.Op("mean", bb.Op("multiply", centred, centred), IntArray(axes), true);
  Expr inv_std = bb.Op("rsqrt", bb.Op("add", var, bb.ScalarConstant(ctx.Double(7), info.dtype)));
  Expr y = bb.Op("multiply", centred, inv_std);
  y = bb.Op("multiply", y, bb.Op("reshape", gamma, IntArray(affine_shape)));
  return bb.Op("add", y, bb.Op("reshape", beta, IntArray(affine_shape)));
}

// (input, weight?, bias?, running_mean?, running_var?, training, momentum, eps, cudnn)
void BatchNorm(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  Expr x = ctx.Tensor(0);
  TensorInfo info = bb.InfoOf(x);
  if (info.ndim() < 2) throw std::runtime_error("batch_norm needs at least 2 dims");
  int64_t channels = info.shape.at(1);
  Expr gamma = OptionalOr(ctx, 1, {channels}, 1.0, info.dtype);
  Expr beta = OptionalOr(ctx, 2, {channels}, 0.0, info.dtype);
  if (ctx.Bool(5)) {
    if (!ctx.IsNone(3) || !ctx.IsNone(4)) {
      throw std::runtime_error("batch_norm in training mode updates its running statistics");
    }
    ctx.SetOutput(0, BatchStatisticsNorm(ctx, x, info, gamma, beta));
    return;
  }
  if (ctx.IsNone(3) || ctx.IsNone(4)) throw std::runtime_error("needs running statistics");
  // Emitted as nn.batch_norm (not decomposed) so that the build pipeline's
  // FoldBatchnormToConv2D can fold it into a preceding convolution's weights.
  Expr bn = bb.Op("nn.batch_norm", x, gamma, beta, ctx.Tensor(3), ctx.Tensor(4), 1, ctx.Double(7),
                  true, true, 0.1, false);
  ctx.SetOutput(0, bb.TupleGetItem(bn, 0));
}

// Training mode is converted only without running statistics (it would
// update them in place otherwise).
std::optional<std::string> UpdatesRunningStats(const OpSignature& op) {
  auto training = op.ConstantArg(5);
  if (!training || !training->isBool() || !training->toBool()) return std::nullopt;
  for (size_t i : {3, 4}) {
    if (!op.Arg(i).type->cast<c10::NoneType>()) {
      return "batch_norm in training mode updates its running statistics";
    }
  }
  return std::nullopt;
}

// (input, normalized_shape, weight?, bias?, eps, cudnn_enable)
void LayerNorm(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  TensorInfo info = ctx.bb.InfoOf(x);
  std::vector<int64_t> normalized = ctx.Ints(1);
  std::vector<int64_t> axes;
  for (size_t i = 0; i < normalized.size(); ++i) {
    axes.push_back(info.ndim() - static_cast<int64_t>(normalized.size()) + i);
  }
  Expr gamma = OptionalOr(ctx, 2, normalized, 1.0, info.dtype);
  Expr beta = OptionalOr(ctx, 3, normalized, 0.0, info.dtype);
  ctx.SetOutput(0, ctx.bb.Op("nn.layer_norm", x, gamma, beta, IntArray(axes), ctx.Double(4), true,
                             true));
}

// (input, num_groups, weight?, bias?, eps, cudnn_enabled)
void GroupNorm(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  TensorInfo info = ctx.bb.InfoOf(x);
  int64_t channels = info.shape.at(1);
  std::vector<int64_t> axes;
  for (int64_t i = 2; i < info.ndim(); ++i) axes.push_back(i);
  Expr gamma = OptionalOr(ctx, 2, {channels}, 1.0, info.dtype);
  Expr beta = OptionalOr(ctx, 3, {channels}, 0.0, info.dtype);
  ctx.SetOutput(0, ctx.bb.Op("nn.group_norm", x, gamma, beta, ctx.Int(1), 1, IntArray(axes),
                             ctx.Double(4), true, true));
}

}  // namespace

TORCH_TVM_CONVERTERS(normalization) {
  reg.Register("aten::batch_norm", BatchNorm, UpdatesRunningStats);
  reg.Register("aten::layer_norm", LayerNorm);
  reg.Register("aten::group_norm", GroupNorm);
}

}  // namespace torch_tvm::convert
