// Dense and matrix ops: linear, addmm, matmul, mm, bmm, and the transposes
// t / transpose / permute that feed them.
#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

Expr MatMul(RelaxBuilder& bb, const Expr& a, const Expr& b) {
  return bb.Op("matmul", a, b, nullptr);
}

Expr Transpose(RelaxBuilder& bb, const Expr& x, int64_t d0, int64_t d1) {
  int64_t ndim = bb.InfoOf(x).ndim();
  if (ndim < 2) return x;
  d0 = NormalizeDim(d0, ndim);
  d1 = NormalizeDim(d1, ndim);
  std::vector<int64_t> perm(ndim);
  for (int64_t i = 0; i < ndim; ++i) perm[i] = i;
  std::swap(perm[d0], perm[d1]);
  return bb.Op("permute_dims", x, IntArray(perm));
}

// (input, weight, bias?)
void Linear(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  Expr y = MatMul(bb, ctx.Tensor(0), Transpose(bb, ctx.Tensor(1), 0, 1));
  if (!ctx.IsNone(2)) y = bb.Op("add", y, ctx.Tensor(2));
  ctx.SetOutput(0, y);
}

// (self, mat1, mat2, beta, alpha): beta * self + alpha * (mat1 @ mat2)
void AddMM(ConvertContext& ctx) {
  Expr prod = Scaled(ctx, MatMul(ctx.bb, ctx.Tensor(1), ctx.Tensor(2)), ctx.Double(4));
  Expr bias = Scaled(ctx, ctx.Tensor(0), ctx.Double(3));
  ctx.SetOutput(0, ctx.bb.Op("add", bias, prod));
}

void Permute(ConvertContext& ctx) {
  auto dims = ctx.Ints(1);
  int64_t ndim = ctx.Info(0).ndim();
  for (auto& d : dims) d = NormalizeDim(d, ndim);
  ctx.SetOutput(0, ctx.bb.Op("permute_dims", ctx.Tensor(0), IntArray(dims)));
}

}  // namespace

TORCH_TVM_CONVERTERS(linear_algebra) {
  reg.Register("aten::linear", Linear);
  reg.Register("aten::addmm", AddMM);
  for (const char* s : {"aten::matmul", "aten::mm", "aten::bmm"}) {
    reg.Register(s, [](ConvertContext& c) { c.SetOutput(0, MatMul(c.bb, c.Tensor(0), c.Tensor(1))); });
  }
  reg.Register("aten::t", [](ConvertContext& c) { c.SetOutput(0, Transpose(c.bb, c.Tensor(0), 0, 1)); });
  reg.Register("aten::transpose.int", [](ConvertContext& c) {
    c.SetOutput(0, Transpose(c.bb, c.Tensor(0), c.Int(1), c.Int(2)));
  });
  reg.Register("aten::permute", Permute);
}

}  // namespace torch_tvm::convert
