// Attention, spelled out as matmul / softmax / matmul so the matmuls reach the
// BLAS kernels and softmax gets a scheduled reduction:
//   scaled_dot_product_attention;
//   PyTorch's inference fast paths, which nn.MultiheadAttention and
//   nn.TransformerEncoderLayer take in eval under no_grad:
//   _native_multi_head_attention and _transformer_encoder_layer_fwd.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// Scores per head (L x S) from which one fused kernel (torch_tvm.kernels.aten_sdpa)
// runs SDPA instead of matmul / softmax / matmul: the spelled-out form writes
// and reads the whole score matrix. Measured with benchmarks/sdpa_choice.py:
// with a mask the kernel is ATen's flash attention, faster from 128 tokens on
// a Zen 3 (at 64 level or slower); without one it is torch_tvm's packed
// attention, 2.0-2.6x the spelled-out form already at 64 tokens on a Zen 5.
constexpr int64_t kFusedSdpaMinScores = 128 * 128;
constexpr int64_t kPackedSdpaMinScores = 64 * 64;

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
  TensorInfo v = ctx.Info(2);
  auto is_static = [](const TensorInfo& t) {
    return std::all_of(t.shape.begin(), t.shape.end(), [](int64_t d) { return d >= 0; });
  };
  if (q.dtype == "float32" && k.dtype == "float32" && v.dtype == "float32" && nd == 4 &&
      v.ndim() == 4 && is_static(q) && is_static(k) && is_static(v) &&
      L * S >= (ctx.IsNone(3) ? kPackedSdpaMinScores : kFusedSdpaMinScores)) {
    Expr mask = ctx.IsNone(3) ? bb.Constant(at::zeros({0}, at::kFloat)) : ctx.Tensor(3);
    if (!ctx.IsNone(3) && bb.InfoOf(mask).dtype != "bool") mask = CastTo(bb, mask, q.dtype);
    std::vector<int64_t> out = q.shape;
    out.back() = v.shape.back();
    ctx.SetOutput(0, bb.Emit(bb.CallExtern(
                         "torch_tvm.kernels.aten_sdpa",
                         {ctx.Tensor(0), ctx.Tensor(1), ctx.Tensor(2), mask,
                          bb.Constant(at::tensor({int64_t{ctx.Bool(5)}}, at::kLong)),
                          bb.Constant(at::tensor({scale}, at::kDouble))},
                         out, q.dtype)));
    return;
  }

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

// [B, T, E] -> [B, H, T, E / H]
Expr SplitHeads(RelaxBuilder& bb, const Expr& x, int64_t heads) {
  TensorInfo t = bb.InfoOf(x);
  Expr y = bb.Op("reshape", x, IntArray({t.shape[0], t.shape[1], heads, t.shape[2] / heads}));
  return bb.Op("permute_dims", y, IntArray({0, 2, 1, 3}));
}

struct MhaResult {
  Expr out;    // [B, L, E]
  Expr probs;  // [B, H, L, S]
};

// ATen's native_multi_head_attention (attention.cpp), batch first:
//   q, k, v = in-projections (one GEMM for self-attention, split after);
//   scores = (q / sqrt(E / H)) @ k^T, masked with -inf where the mask is
//   true (a float mask counts as true where it is non-zero, as ATen casts it
//   to bool); softmax; @ v; heads merged; out-projection. A row whose keys
//   are all masked comes out NaN, as in eager.
// mask_type: 0 = [L, S] attention mask, 1 = [B, S] key padding mask,
// 2 = a mask broadcastable to [B, H, L, S].
MhaResult MultiHeadAttention(ConvertContext& ctx, const Expr& query, const Expr& key,
                             const Expr& value, int64_t embed_dim, int64_t heads, size_t weights,
                             std::optional<Expr> mask, std::optional<int64_t> mask_type) {
  RelaxBuilder& bb = ctx.bb;
  TensorInfo qi = bb.InfoOf(query), ki = bb.InfoOf(key);
  if (qi.ndim() != 3 || ki.ndim() != 3 || bb.InfoOf(value).ndim() != 3) {
    throw std::runtime_error("multi-head attention expects batched [B, T, E] inputs");
  }
  if (heads <= 0 || embed_dim % heads != 0 || qi.shape[2] != embed_dim) {
    throw std::runtime_error("embed_dim must be divisible by num_heads and match the query");
  }
  int64_t B = qi.shape[0], L = qi.shape[1], S = ki.shape[1], E = embed_dim;
  Expr qkv_w = ctx.Tensor(weights), qkv_b = ctx.Tensor(weights + 1);
  Expr q, k, v;
  if (query.same_as(key) && key.same_as(value)) {
    Expr qkv = bb.Op("split", Dense(bb, query, qkv_w, qkv_b), IntArray({E, 2 * E}), 2);
    q = bb.TupleGetItem(qkv, 0), k = bb.TupleGetItem(qkv, 1), v = bb.TupleGetItem(qkv, 2);
  } else {
    Expr ws = bb.Op("split", qkv_w, IntArray({E, 2 * E}), 0);
    Expr bs = bb.Op("split", qkv_b, IntArray({E, 2 * E}), 0);
    q = Dense(bb, query, bb.TupleGetItem(ws, 0), bb.TupleGetItem(bs, 0));
    k = Dense(bb, key, bb.TupleGetItem(ws, 1), bb.TupleGetItem(bs, 1));
    v = Dense(bb, value, bb.TupleGetItem(ws, 2), bb.TupleGetItem(bs, 2));
  }
  double scale = 1.0 / std::sqrt(static_cast<double>(E / heads));
  q = bb.Op("multiply", SplitHeads(bb, q, heads), bb.ScalarConstant(scale, qi.dtype));
  Expr kt = bb.Op("permute_dims", SplitHeads(bb, k, heads), IntArray({0, 1, 3, 2}));
  Expr scores = bb.Op("matmul", q, kt, nullptr);
  if (mask) {
    Expr m = *mask;
    TensorInfo mi = bb.InfoOf(m);
    if (mi.dtype != "bool") m = bb.Op("not_equal", m, bb.ScalarConstant(0.0, mi.dtype));
    int64_t type = mask_type.value_or(-1);
    if (type == 0 && mi.shape == std::vector<int64_t>{L, S}) {
    } else if (type == 1 && mi.shape == std::vector<int64_t>{B, S}) {
      m = bb.Op("reshape", m, IntArray({B, 1, 1, S}));
    } else if (type != 2 || mi.ndim() > 4) {
      throw std::runtime_error("attention mask of shape and type not supported");
    }
    Expr neg = bb.ScalarConstant(-std::numeric_limits<double>::infinity(), qi.dtype);
    scores = bb.Op("where", m, neg, scores);
  }
  Expr probs = bb.Op("nn.softmax", scores, 3);
  Expr heads_out = bb.Op("matmul", probs, SplitHeads(bb, v, heads), nullptr);
  Expr merged = bb.Op("reshape", bb.Op("permute_dims", heads_out, IntArray({0, 2, 1, 3})),
                      IntArray({B, L, E}));
  return {Dense(bb, merged, ctx.Tensor(weights + 2), ctx.Tensor(weights + 3)), probs};
}

std::optional<Expr> OptionalTensor(ConvertContext& ctx, size_t i) {
  if (i >= ctx.NumInputs() || ctx.IsNone(i)) return std::nullopt;
  return ctx.Tensor(i);
}

std::optional<int64_t> OptionalInt(ConvertContext& ctx, size_t i) {
  if (i >= ctx.NumInputs() || ctx.IsNone(i)) return std::nullopt;
  return ctx.Int(i);
}

// (query, key, value, embed_dim, num_head, qkv_weight, qkv_bias, proj_weight,
//  proj_bias, mask?, need_weights, average_attn_weights, mask_type?)
//  -> (output, weights)
void NativeMultiHeadAttention(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  MhaResult r = MultiHeadAttention(ctx, ctx.Tensor(0), ctx.Tensor(1), ctx.Tensor(2), ctx.Int(3),
                                   ctx.Int(4), 5, OptionalTensor(ctx, 9), OptionalInt(ctx, 12));
  ctx.SetOutput(0, r.out);
  if (!ctx.Bool(10)) {
    // Eager returns an undefined tensor; nn.MultiheadAttention turns it into
    // None and never reads it. An empty tensor stands in for it.
    ctx.SetOutput(1, bb.Op("zeros", bb.Shape({0}), ctx.Info(0).dtype));
  } else if (ctx.Bool(11)) {
    ctx.SetOutput(1, bb.Op("mean", r.probs, IntArray({1}), false));
  } else {
    ctx.SetOutput(1, r.probs);
  }
}

Expr LayerNormLast(ConvertContext& ctx, const Expr& x, size_t weight, double eps) {
  int64_t last = ctx.bb.InfoOf(x).ndim() - 1;
  return ctx.bb.Op("nn.layer_norm", x, ctx.Tensor(weight), ctx.Tensor(weight + 1),
                   IntArray({last}), eps, true, true);
}

// (src, embed_dim, num_heads, qkv_weight, qkv_bias, proj_weight, proj_bias,
//  use_gelu, norm_first, eps, norm_weight_1, norm_bias_1, norm_weight_2,
//  norm_bias_2, ffn_weight_1, ffn_bias_1, ffn_weight_2, ffn_bias_2, mask?,
//  mask_type?): ATen's transformer_encoder_layer_forward (transformer.cpp).
void TransformerEncoderLayer(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  Expr src = ctx.Tensor(0);
  bool norm_first = ctx.Bool(8);
  double eps = ctx.Double(9);
  Expr x = norm_first ? LayerNormLast(ctx, src, 10, eps) : src;
  x = MultiHeadAttention(ctx, x, x, x, ctx.Int(1), ctx.Int(2), 3, OptionalTensor(ctx, 18),
                         OptionalInt(ctx, 19)).out;
  x = bb.Op("add", x, src);
  if (!norm_first) x = LayerNormLast(ctx, x, 10, eps);
  Expr residual = x;
  if (norm_first) x = LayerNormLast(ctx, x, 12, eps);
  x = Dense(bb, x, ctx.Tensor(14), ctx.Tensor(15));
  x = bb.Op(ctx.Bool(7) ? "nn.gelu" : "nn.relu", x);
  x = bb.Op("add", Dense(bb, x, ctx.Tensor(16), ctx.Tensor(17)), residual);
  if (!norm_first) x = LayerNormLast(ctx, x, 12, eps);
  ctx.SetOutput(0, x);
}

}  // namespace

TORCH_TVM_CONVERTERS(attention) {
  reg.Register("aten::scaled_dot_product_attention", ScaledDotProductAttention);
  reg.Register("aten::_native_multi_head_attention", NativeMultiHeadAttention);
  reg.Register("aten::_transformer_encoder_layer_fwd", TransformerEncoderLayer);
}

}  // namespace torch_tvm::convert
