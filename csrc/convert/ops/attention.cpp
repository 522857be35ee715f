// scaled_dot_product_attention, spelled out as matmul / softmax / matmul so
// the matmuls reach the BLAS kernels and softmax gets a scheduled reduction.
#include <ATen/ATen.h>

#include <cmath>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// (query, key, value, attn_mask?, dropout_p, is_causal, scale?, enable_gqa)
void ScaledDotProductAttention(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  if (ctx.Double(4) != 0.0) throw std::runtime_error("dropout_p must be 0 in inference");
  if (ctx.NumInputs() > 7 && ctx.Bool(7)) throw std::runtime_error("enable_gqa is not supported");
  TensorInfo q = ctx.Info(0), k = ctx.Info(1);
  if (q.ndim() < 2 || k.ndim() != q.ndim()) throw std::runtime_error("unexpected q/k ranks");
  int64_t nd = q.ndim();
  int64_t L = q.shape[nd - 2], S = k.shape[nd - 2], E = q.shape[nd - 1];
  double scale = ctx.IsNone(6) ? 1.0 / std::sqrt(static_cast<double>(E)) : ctx.Double(6);

  std::vector<int64_t> perm(nd);
  for (int64_t i = 0; i < nd; ++i) perm[i] = i;
  std::swap(perm[nd - 1], perm[nd - 2]);
  Expr kt = bb.Op("permute_dims", ctx.Tensor(1), IntArray(perm));
  Expr scores = bb.Op("matmul", ctx.Tensor(0), kt, nullptr);
  scores = bb.Op("multiply", scores, bb.ScalarConstant(scale, q.dtype));
  if (ctx.Bool(5)) {
    // Causal: positions j > i get -inf.
    auto mask = at::ones({L, S}, at::kBool).tril();
    Expr neg = bb.ScalarConstant(-std::numeric_limits<double>::infinity(), q.dtype);
    scores = bb.Op("where", bb.Constant(mask), scores, neg);
  }
  if (!ctx.IsNone(3)) {
    Expr mask = ctx.Tensor(3);
    if (bb.InfoOf(mask).dtype == "bool") {
      Expr neg = bb.ScalarConstant(-std::numeric_limits<double>::infinity(), q.dtype);
      scores = bb.Op("where", mask, scores, neg);
    } else {
      scores = bb.Op("add", scores, CastTo(bb, mask, q.dtype));
    }
  }
  Expr probs = bb.Op("nn.softmax", scores, nd - 1);
  ctx.SetOutput(0, bb.Op("matmul", probs, ctx.Tensor(2), nullptr));
}

}  // namespace

TORCH_TVM_CONVERTERS(attention) {
  reg.Register("aten::scaled_dot_product_attention", ScaledDotProductAttention);
}

}  // namespace torch_tvm::convert
