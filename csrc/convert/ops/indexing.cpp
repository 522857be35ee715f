// Indexing and broadcasting: embedding, slice, expand, expand_as.
#include <limits>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// (weight, indices, padding_idx, scale_grad_by_freq, sparse). TVM's take
// does not bounds-check, so the lookup runs in PyTorch's at::embedding (an
// extern kernel), which raises on a bad index instead of reading garbage.
void Embedding(ConvertContext& ctx) {
  TensorInfo w = ctx.Info(0), idx = ctx.Info(1);
  if (w.ndim() != 2) throw std::runtime_error("embedding weight must be 2-d");
  std::vector<int64_t> out = idx.shape;
  out.push_back(w.shape[1]);
  ctx.SetOutput(0, ctx.bb.Emit(ctx.bb.CallExtern("torch_tvm.kernels.embedding",
                                                 {ctx.Tensor(0), ctx.Tensor(1)}, out, w.dtype)));
}

// slice.Tensor(self, dim, start?, end?, step)
void Slice(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  int64_t n = info.shape[dim];
  int64_t start = ctx.IsNone(2) ? 0 : ctx.Int(2);
  int64_t end = ctx.IsNone(3) ? n : ctx.Int(3);
  int64_t step = ctx.Int(4);
  if (step <= 0) throw std::runtime_error("slice step must be positive");
  auto clamp = [n](int64_t v) {
    if (v < 0) v += n;
    return std::min(std::max<int64_t>(v, 0), n);
  };
  start = clamp(start);
  end = std::max(clamp(end), start);
  auto& bb = ctx.bb;
  ctx.SetOutput(0, bb.Op("strided_slice", ctx.Tensor(0), bb.IntTuple({dim}), bb.IntTuple({start}),
                         bb.IntTuple({end}), bb.IntTuple({step}), true));
}

// expand(self, size, implicit): -1 keeps a dimension.
void Expand(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  std::vector<int64_t> size = ctx.Ints(1);
  if (size.size() < info.shape.size()) throw std::runtime_error("expand to fewer dims");
  size_t offset = size.size() - info.shape.size();
  for (size_t i = 0; i < size.size(); ++i) {
    if (size[i] == -1) {
      if (i < offset) throw std::runtime_error("-1 in a new leading dimension");
      size[i] = info.shape[i - offset];
    }
  }
  ctx.SetOutput(0, ctx.bb.Op("broadcast_to", ctx.Tensor(0), ctx.bb.Shape(size)));
}

}  // namespace

TORCH_TVM_CONVERTERS(indexing) {
  reg.Register("aten::embedding", Embedding);
  reg.Register("aten::slice.Tensor", Slice);
  reg.Register("aten::expand", Expand);
  // expand_as(self, other): other's shape (ECA / SE attention gates).
  reg.Register("aten::expand_as", [](ConvertContext& c) {
    c.SetOutput(0, c.bb.Op("broadcast_to", c.Tensor(0), c.bb.Shape(c.Info(1).shape)));
  });
}

}  // namespace torch_tvm::convert
