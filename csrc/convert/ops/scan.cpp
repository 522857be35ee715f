// Scans and selection: cumsum, topk; statistics: var/std (and their _mean
// variants), vector norms, logsumexp, prod.
#include <cmath>
#include <limits>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

bool IsFloat(const std::string& dtype) {
  return dtype.rfind("float", 0) == 0 || dtype == "bfloat16";
}

std::string DTypeArg(const ConvertContext& ctx, size_t i) {
  return RelaxDType(static_cast<at::ScalarType>(ctx.Int(i)));
}

// Integer and bool inputs of sum-like ops accumulate in int64 (as eager).
Expr SumLikeInput(ConvertContext& ctx, size_t dtype_index) {
  Expr x = ctx.Tensor(0);
  if (dtype_index < ctx.NumInputs() && !ctx.IsNone(dtype_index)) {
    return CastTo(ctx.bb, x, DTypeArg(ctx, dtype_index));
  }
  if (!IsFloat(ctx.Info(0).dtype)) return CastTo(ctx.bb, x, "int64");
  return x;
}

// cumsum(self, dim, dtype?)
void CumSum(ConvertContext& ctx) {
  Expr x = SumLikeInput(ctx, 2);
  TensorInfo info = ctx.bb.InfoOf(x);
  if (info.ndim() == 0) {
    NormalizeDim(ctx.Int(1), 0);
    ctx.SetOutput(0, ctx.bb.Op("reshape", x, IntArray({})));
    return;
  }
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  ctx.SetOutput(0, ctx.bb.Op("cumsum", x, dim, info.dtype, false));
}

// topk(self, k, dim, largest, sorted) -> (values, indices). The indices come
// from at::topk (an extern kernel), so ties and NaN (larger than everything)
// are ordered exactly as eager orders them; the values are gathered with them.
void TopK(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("topk of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(2), info.ndim());
  int64_t k = ctx.Int(1);
  if (k < 0 || k > info.shape[dim]) throw std::runtime_error("topk: k out of range");
  std::vector<int64_t> shape = info.shape;
  shape[dim] = k;
  auto& bb = ctx.bb;
  Expr idx = bb.Emit(bb.CallExtern(
      "torch_tvm.kernels.aten_topk_indices",
      {ctx.Tensor(0), PrimInt(k), PrimInt(dim), PrimInt(ctx.Bool(3)), PrimInt(ctx.Bool(4))},
      shape, "int64"));
  ctx.SetOutput(0, bb.Op("gather_elements", ctx.Tensor(0), idx, dim));
  ctx.SetOutput(1, idx);
}

// Number of elements reduced over dims.
int64_t Count(const TensorInfo& info, const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= info.shape[d];
  return n;
}

Expr RequireFloat(ConvertContext& ctx, const char* what) {
  if (!IsFloat(ctx.Info(0).dtype)) {
    throw std::runtime_error(std::string(what) + " of a " + ctx.Info(0).dtype + " tensor");
  }
  return ctx.Tensor(0);
}

// (variance, mean) over dims, two-pass: sum((x - mean)^2) / max(0, n - correction).
std::pair<Expr, Expr> Moments(RelaxBuilder& bb, const Expr& x, const std::vector<int64_t>& dims,
                              double correction, bool keep) {
  TensorInfo info = bb.InfoOf(x);
  if (dims.empty()) {  // a 0-d tensor: one element
    Expr zero = bb.Op("subtract", x, x);
    double div = std::max(0.0, 1.0 - correction);
    Expr sq = bb.Op("multiply", zero, zero);
    return {div > 0 ? bb.Op("divide", sq, bb.ScalarConstant(div, info.dtype))
                    : bb.Op("multiply", sq, bb.ScalarConstant(INFINITY, info.dtype)), x};
  }
  Expr mean = bb.Op("mean", x, IntArray(dims), true);
  Expr dev = bb.Op("subtract", x, mean);
  Expr ss = bb.Op("sum", bb.Op("multiply", dev, dev), IntArray(dims), keep);
  double div = std::max(0.0, static_cast<double>(Count(info, dims)) - correction);
  // No degrees of freedom: ss / 0 as eager (NaN for 0, inf otherwise); a
  // constant zero divisor would fail TVM's constant folding.
  Expr var = div > 0 ? bb.Op("divide", ss, bb.ScalarConstant(div, info.dtype))
                     : bb.Op("multiply", ss, bb.ScalarConstant(INFINITY, info.dtype));
  if (!keep) mean = bb.Op("squeeze", mean, IntArray(dims));
  return {var, mean};
}

// var / std and var_mean / std_mean, every overload:
//   (self, unbiased)                       -- no dims
//   .dim(self, dim?, unbiased, keepdim)
//   .correction(self, dim?, correction?, keepdim)
void VarStd(ConvertContext& ctx, bool sqrt, bool with_mean) {
  Expr x = RequireFloat(ctx, "var/std");
  int64_t ndim = ctx.Info(0).ndim();
  const std::string& key = ctx.op.key;
  bool by_correction = key.find(".correction") != std::string::npos;
  bool by_dim = key.find(".dim") != std::string::npos || by_correction;
  std::vector<int64_t> dims;
  double correction = 1;
  bool keep = false;
  if (by_dim) {
    dims = ReduceDims(ctx, 1, ndim);
    keep = ctx.Bool(3);
    if (by_correction) {
      correction = ctx.IsNone(2) ? 1.0 : ctx.Double(2);
    } else {
      correction = ctx.Bool(2) ? 1.0 : 0.0;
    }
  } else {
    dims = ReduceDims(ctx, ctx.NumInputs(), ndim);
    correction = ctx.Bool(1) ? 1.0 : 0.0;
  }
  if (ndim == 0) dims.clear();
  auto [var, mean] = Moments(ctx.bb, x, dims, correction, keep);
  ctx.SetOutput(0, sqrt ? ctx.bb.Op("sqrt", var) : var);
  if (with_mean) ctx.SetOutput(1, mean);
}

// Vector p-norm of x over dims (torch.linalg.vector_norm semantics).
Expr VectorNorm(RelaxBuilder& bb, const Expr& x, double p, const std::vector<int64_t>& dims,
                bool keep) {
  std::string dtype = bb.InfoOf(x).dtype;
  Expr ax = bb.Op("abs", x);
  if (dims.empty()) {  // 0-d: |x| for every p but 0, where it is x != 0
    return p == 0 ? bb.Op("astype", ToBool(bb, x), dtype) : ax;
  }
  if (std::isinf(p)) {
    // NaN-keeping max / min of |x|: max for +inf, -max(-|x|) for -inf.
    Expr v = p > 0 ? ax : bb.Op("negative", ax);
    Expr r = bb.Op("max", v, IntArray(dims), keep);
    if (dtype != "float32") {
      Expr any_nan = bb.Op("max", bb.Op("astype", bb.Op("isnan", x), std::string("int8")),
                           IntArray(dims), keep);
      r = bb.Op("where", bb.Op("astype", any_nan, std::string("bool")),
                bb.ScalarConstant(std::numeric_limits<double>::quiet_NaN(), dtype), r);
    }
    return p > 0 ? r : bb.Op("negative", r);
  }
  if (p == 0) {
    Expr nz = bb.Op("astype", ToBool(bb, x), dtype);
    return bb.Op("sum", nz, IntArray(dims), keep);
  }
  if (p == 1) return bb.Op("sum", ax, IntArray(dims), keep);
  if (p == 2) return bb.Op("sqrt", bb.Op("sum", bb.Op("multiply", x, x), IntArray(dims), keep));
  Expr powed = bb.Op("power", ax, bb.ScalarConstant(p, dtype));
  return bb.Op("power", bb.Op("sum", powed, IntArray(dims), keep),
               bb.ScalarConstant(1.0 / p, dtype));
}

// linalg_vector_norm(self, ord, dim?, keepdim, dtype?)
void LinalgVectorNorm(ConvertContext& ctx) {
  Expr x = RequireFloat(ctx, "vector norm");
  if (!ctx.IsNone(4)) x = CastTo(ctx.bb, x, DTypeArg(ctx, 4));
  int64_t ndim = ctx.Info(0).ndim();
  std::vector<int64_t> dims = ReduceDims(ctx, 2, ndim);
  if (ndim == 0) dims.clear();
  ctx.SetOutput(0, VectorNorm(ctx.bb, x, ctx.Double(1), dims, ctx.Bool(3)));
}

// norm.ScalarOpt_dim(self, p?, dim, keepdim) / norm.Scalar(self, p)
void Norm(ConvertContext& ctx, bool with_dims) {
  Expr x = RequireFloat(ctx, "norm");
  int64_t ndim = ctx.Info(0).ndim();
  double p = ctx.IsNone(1) ? 2.0 : ctx.Double(1);
  std::vector<int64_t> dims = ReduceDims(ctx, with_dims ? 2 : ctx.NumInputs(), ndim);
  if (ndim == 0) dims.clear();
  ctx.SetOutput(0, VectorNorm(ctx.bb, x, p, dims, with_dims && ctx.Bool(3)));
}

// logsumexp(self, dim, keepdim): max-subtracted; an infinite max is replaced
// by 0 (as eager), so a row of -inf gives -inf and a +inf gives +inf.
void LogSumExp(ConvertContext& ctx) {
  auto& bb = ctx.bb;
  Expr x = ctx.Tensor(0);
  TensorInfo info = ctx.Info(0);
  if (!IsFloat(info.dtype)) {
    x = CastTo(bb, x, RelaxDType(at::typeMetaToScalarType(at::get_default_dtype())));
  }
  std::string dtype = bb.InfoOf(x).dtype;
  if (ctx.Ints(1).empty()) throw std::runtime_error("logsumexp over an empty dim list");
  std::vector<int64_t> dims = ReduceDims(ctx, 1, info.ndim());
  bool keep = ctx.Bool(2);
  if (info.ndim() == 0) {
    ctx.SetOutput(0, bb.Op("add", x, bb.ScalarConstant(0, dtype)));
    return;
  }
  Expr m = bb.Op("max", x, IntArray(dims), true);
  Expr inf = bb.Op("equal", bb.Op("abs", m), bb.ScalarConstant(INFINITY, dtype));
  m = bb.Op("where", inf, bb.ScalarConstant(0, dtype), m);
  Expr s = bb.Op("sum", bb.Op("exp", bb.Op("subtract", x, m)), IntArray(dims), keep);
  if (!keep) m = bb.Op("squeeze", m, IntArray(dims));
  ctx.SetOutput(0, bb.Op("add", bb.Op("log", s), m));
}

// prod(self, dtype?) / prod.dim_int(self, dim, keepdim, dtype?)
void Prod(ConvertContext& ctx, bool full) {
  Expr x = SumLikeInput(ctx, full ? 1 : 3);
  int64_t ndim = ctx.Info(0).ndim();
  if (ndim == 0) {
    if (!full) NormalizeDim(ctx.Int(1), 0);
    ctx.SetOutput(0, ctx.bb.Op("reshape", x, IntArray({})));
    return;
  }
  std::vector<int64_t> dims;
  if (full) {
    for (int64_t d = 0; d < ndim; ++d) dims.push_back(d);
  } else {
    dims = {NormalizeDim(ctx.Int(1), ndim)};
  }
  ctx.SetOutput(0, ctx.bb.Op("prod", x, IntArray(dims), full ? false : ctx.Bool(2)));
}

}  // namespace

TORCH_TVM_CONVERTERS(scan) {
  reg.Register("aten::cumsum", CumSum);
  reg.Register("aten::topk", TopK);
  for (const char* s : {"aten::var", "aten::var.dim", "aten::var.correction"}) {
    reg.Register(s, [](ConvertContext& c) { VarStd(c, false, false); });
  }
  for (const char* s : {"aten::std", "aten::std.dim", "aten::std.correction"}) {
    reg.Register(s, [](ConvertContext& c) { VarStd(c, true, false); });
  }
  for (const char* s : {"aten::var_mean", "aten::var_mean.dim", "aten::var_mean.correction"}) {
    reg.Register(s, [](ConvertContext& c) { VarStd(c, false, true); });
  }
  for (const char* s : {"aten::std_mean", "aten::std_mean.dim", "aten::std_mean.correction"}) {
    reg.Register(s, [](ConvertContext& c) { VarStd(c, true, true); });
  }
  reg.Register("aten::linalg_vector_norm", LinalgVectorNorm);
  reg.Register("aten::norm.ScalarOpt_dim", [](ConvertContext& c) { Norm(c, true); });
  reg.Register("aten::norm.Scalar", [](ConvertContext& c) { Norm(c, false); });
  reg.Register("aten::logsumexp", LogSumExp);
  reg.Register("aten::prod", [](ConvertContext& c) { Prod(c, true); });
  reg.Register("aten::prod.dim_int", [](ConvertContext& c) { Prod(c, false); });
}

}  // namespace torch_tvm::convert
