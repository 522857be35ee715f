// Reductions and normalised exponentials: mean/sum over dims, max(dim),
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

// max.dim(self, dim, keepdim) -> (values, indices)
void MaxDim(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  int64_t dim = NormalizeDim(ctx.Int(1), ctx.bb.InfoOf(x).ndim());
  bool keep = ctx.Bool(2);
  ctx.SetOutput(0, ctx.bb.Op("max", x, IntArray({dim}), keep));
  ctx.SetOutput(1, ctx.bb.Op("argmax", x, dim, keep));
}

}  // namespace

TORCH_TVM_CONVERTERS(reduction) {
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
