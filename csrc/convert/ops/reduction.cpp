// Reductions and normalised exponentials: mean/sum over dims, max(dim),
// min(dim), amax/amin, full max/min, argmax/argmin, all/any,
// softmax/log_softmax; and dropout, which is the identity in inference.
#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// Optional dtype argument (a ScalarType int) applied before reducing.
Expr WithDType(ConvertContext& ctx, Expr x, size_t dtype_index) {
  if (dtype_index >= ctx.NumInputs() || ctx.IsNone(dtype_index)) return x;
  auto type = static_cast<at::ScalarType>(ctx.Int(dtype_index));
  return CastTo(ctx.bb, x, RelaxDType(type));
}

// (self, dim?, keepdim, dtype?); the overloads without dims reduce everything:
// (self, dtype?).
void Reduce(ConvertContext& ctx, const char* op) {
  bool all = ctx.NumInputs() <= 2;
  size_t dtype_index = all ? 1 : 3;
  Expr x = WithDType(ctx, ctx.Tensor(0), dtype_index);
  std::string dtype = ctx.bb.InfoOf(x).dtype;
  bool integral = dtype == "bool" || dtype.rfind("int", 0) == 0 || dtype.rfind("uint", 0) == 0;
  if (integral && (dtype_index >= ctx.NumInputs() || ctx.IsNone(dtype_index))) {
    // torch sums bool and integer tensors in int64 (a count of a bool mask
    // stayed bool, and uint8 wrapped); their mean is an error in eager.
    if (std::string(op) != "sum") throw std::runtime_error(std::string(op) + " of an integer tensor");
    x = CastTo(ctx.bb, x, "int64");
  }
  int64_t ndim = ctx.bb.InfoOf(x).ndim();
  std::vector<int64_t> dims = (all || ctx.IsNone(1)) ? std::vector<int64_t>{} : ctx.Ints(1);
  if (dims.empty()) {
    for (int64_t i = 0; i < ndim; ++i) dims.push_back(i);
  }
  for (auto& d : dims) d = NormalizeDim(d, ndim);
  ctx.SetOutput(0, ctx.bb.Op(op, x, IntArray(dims), all ? false : ctx.Bool(2)));
}

// (self, dim, dtype?)
void Softmax(ConvertContext& ctx, const char* op) {
  Expr x = WithDType(ctx, ctx.Tensor(0), 2);
  int64_t dim = NormalizeDim(ctx.Int(1), ctx.bb.InfoOf(x).ndim());
  ctx.SetOutput(0, ctx.bb.Op(op, x, dim));
}

// max over dims keeping NaN: the legalisation of relax.max keeps it in every
// float dtype (_legalize._reduce_rule, also at opt_level 0).
Expr NanMax(RelaxBuilder& bb, const Expr& x, const std::vector<int64_t>& dims, bool keep) {
  std::string dtype = bb.InfoOf(x).dtype;
  if (dtype == "bool") {
    Expr r = bb.Op("max", bb.Op("astype", x, std::string("int8")), IntArray(dims), keep);
    return bb.Op("astype", r, std::string("bool"));
  }
  return bb.Op("max", x, IntArray(dims), keep);
}

// max.dim(self, dim, keepdim) -> (values, indices), values keeping NaN.
void MaxDim(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  int64_t dim = NormalizeDim(ctx.Int(1), ctx.bb.InfoOf(x).ndim());
  bool keep = ctx.Bool(2);
  ctx.SetOutput(0, NanMax(ctx.bb, x, {dim}, keep));
  ctx.SetOutput(1, ctx.bb.Op("argmax", x, dim, keep));
}

// min over dims keeping NaN: -max(-x) for floats (negation is exact).
Expr NanMin(RelaxBuilder& bb, const Expr& x, const std::vector<int64_t>& dims, bool keep) {
  std::string dtype = bb.InfoOf(x).dtype;
  if (dtype == "bool") {
    Expr r = bb.Op("min", bb.Op("astype", x, std::string("int8")), IntArray(dims), keep);
    return bb.Op("astype", r, std::string("bool"));
  }
  if (!IsFloatDType(dtype)) return bb.Op("min", x, IntArray(dims), keep);
  return bb.Op("negative", NanMax(bb, bb.Op("negative", x), dims, keep));
}

std::vector<int64_t> AllDims(int64_t ndim) {
  std::vector<int64_t> dims(ndim);
  for (int64_t i = 0; i < ndim; ++i) dims[i] = i;
  return dims;
}

// amax / amin (self, dim[], keepdim): an empty dim list reduces everything.
void MinMaxReduce(ConvertContext& ctx, bool is_max, bool full) {
  Expr x = ctx.Tensor(0);
  int64_t ndim = ctx.Info(0).ndim();
  if (ndim == 0) {
    ctx.SetOutput(0, ctx.bb.Op("reshape", x, IntArray({})));
    return;
  }
  std::vector<int64_t> dims = full ? AllDims(ndim) : ReduceDims(ctx, 1, ndim);
  bool keep = full ? false : ctx.Bool(2);
  ctx.SetOutput(0, is_max ? NanMax(ctx.bb, x, dims, keep) : NanMin(ctx.bb, x, dims, keep));
}

// argmax / argmin (self, dim?, keepdim): NaN wins, the first index among
// equals. Float argmin is argmax of -x, so both use the NaN-keeping argmax
// legalisation (_legalize._argmax_rule); integers use TVM's own (first index).
Expr ArgExtreme(RelaxBuilder& bb, Expr x, int64_t dim, bool keep, bool is_max) {
  std::string dtype = bb.InfoOf(x).dtype;
  if (dtype == "bool") x = bb.Op("astype", x, std::string("int8"));
  if (is_max) return bb.Op("argmax", x, dim, keep);
  if (IsFloatDType(dtype)) return bb.Op("argmax", bb.Op("negative", x), dim, keep);
  return bb.Op("argmin", x, dim, keep);
}

void ArgMinMax(ConvertContext& ctx, bool is_max) {
  TensorInfo info = ctx.Info(0);
  bool keep = ctx.Bool(2);
  Expr x = ctx.Tensor(0);
  if (ctx.IsNone(1) || info.ndim() == 0) {  // over the flattened tensor
    int64_t numel = 1;
    for (int64_t s : info.shape) numel *= s;
    if (numel == 0) throw std::runtime_error("argmax/argmin of an empty tensor");
    Expr r = ArgExtreme(ctx.bb, ctx.bb.Op("reshape", x, IntArray({numel})), 0, false, is_max);
    std::vector<int64_t> shape = keep ? std::vector<int64_t>(info.ndim(), 1)
                                      : std::vector<int64_t>{};
    ctx.SetOutput(0, ctx.bb.Op("reshape", r, IntArray(shape)));
    return;
  }
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  ctx.SetOutput(0, ArgExtreme(ctx.bb, x, dim, keep, is_max));
}

// min.dim(self, dim, keepdim) -> (values, indices)
void MinDim(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("min.dim of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  bool keep = ctx.Bool(2);
  ctx.SetOutput(0, NanMin(ctx.bb, x, {dim}, keep));
  ctx.SetOutput(1, ArgExtreme(ctx.bb, x, dim, keep, false));
}

// all / any: x != 0 (NaN counts as true), reduced as int8 min / max. The
// result is bool, uint8 for a uint8 input (as eager). all.dims with an empty
// list reduces nothing; None reduces everything.
void AllAny(ConvertContext& ctx, bool is_all, int mode /*0 full, 1 dim, 2 dims*/) {
  auto& bb = ctx.bb;
  TensorInfo info = ctx.Info(0);
  Expr x = ctx.Tensor(0);
  Expr b = ToBool(bb, x);
  std::vector<int64_t> dims;
  bool keep = false;
  if (mode == 0 || (mode == 2 && ctx.IsNone(1))) {
    dims = AllDims(info.ndim());
  } else {
    for (int64_t d : ctx.Ints(1)) dims.push_back(NormalizeDim(d, info.ndim()));
    if (info.ndim() == 0) dims.clear();
  }
  if (mode != 0) keep = ctx.Bool(2);
  Expr r = b;
  if (!dims.empty()) {
    Expr i8 = bb.Op("astype", b, std::string("int8"));
    r = bb.Op("astype", bb.Op(is_all ? "min" : "max", i8, IntArray(dims), keep),
              std::string("bool"));
  }
  ctx.SetOutput(0, info.dtype == "uint8" ? bb.Op("astype", r, std::string("uint8")) : r);
}

}  // namespace

TORCH_TVM_CONVERTERS(reduction) {
  reg.Register("aten::amax", [](ConvertContext& c) { MinMaxReduce(c, true, false); });
  reg.Register("aten::amin", [](ConvertContext& c) { MinMaxReduce(c, false, false); });
  reg.Register("aten::max", [](ConvertContext& c) { MinMaxReduce(c, true, true); });
  reg.Register("aten::min", [](ConvertContext& c) { MinMaxReduce(c, false, true); });
  reg.Register("aten::argmax", [](ConvertContext& c) { ArgMinMax(c, true); });
  reg.Register("aten::argmin", [](ConvertContext& c) { ArgMinMax(c, false); });
  reg.Register("aten::min.dim", MinDim);
  reg.Register("aten::all", [](ConvertContext& c) { AllAny(c, true, 0); });
  reg.Register("aten::any", [](ConvertContext& c) { AllAny(c, false, 0); });
  reg.Register("aten::all.dim", [](ConvertContext& c) { AllAny(c, true, 1); });
  reg.Register("aten::any.dim", [](ConvertContext& c) { AllAny(c, false, 1); });
  reg.Register("aten::all.dims", [](ConvertContext& c) { AllAny(c, true, 2); });
  reg.Register("aten::any.dims", [](ConvertContext& c) { AllAny(c, false, 2); });
  reg.Register("aten::mean.dim", [](ConvertContext& c) { Reduce(c, "mean"); });
  reg.Register("aten::sum.dim_IntList", [](ConvertContext& c) { Reduce(c, "sum"); });
  reg.Register("aten::mean", [](ConvertContext& c) { Reduce(c, "mean"); });
  reg.Register("aten::sum", [](ConvertContext& c) { Reduce(c, "sum"); });
  reg.Register("aten::softmax.int", [](ConvertContext& c) { Softmax(c, "nn.softmax"); });
  reg.Register("aten::log_softmax.int", [](ConvertContext& c) { Softmax(c, "nn.log_softmax"); });
  reg.Register("aten::max.dim", MaxDim);
  for (const char* s : {"aten::dropout", "aten::feature_dropout"}) {
    reg.Register(s, [](ConvertContext& c) {
                   RequireFalse(c, 2, "dropout in training mode");
                   c.SetOutput(0, c.Tensor(0));
                 },
                 RejectIfTrue(2, "dropout in training mode"));
  }
}

}  // namespace torch_tvm::convert
