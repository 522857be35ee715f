// Indexing and broadcasting: embedding, embedding_bag, slice, slice_scatter,
// select_scatter, expand, expand_as.
#include <ATen/ATen.h>

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

// The length of a 1-d tensor type profiled in the graph, when known.
std::optional<int64_t> ProfiledLength(const c10::TypePtr& type) {
  auto tensor = type->cast<c10::TensorType>();
  if (!tensor) return std::nullopt;
  auto sizes = tensor->sizes().concrete_sizes();
  if (!sizes || sizes->size() != 1) return std::nullopt;
  return (*sizes)[0];
}

// embedding_bag(weight, indices, offsets, scale_grad_by_freq, mode, sparse,
//               per_sample_weights?, include_last_offset[, padding_idx?])
//   -> (output, offset2bag, bag_size, max_indices)
// runs at::embedding_bag itself (an extern kernel with four outputs): it
// raises on an index out of range or bad offsets, as eager does. The shapes of
// the three bookkeeping outputs follow ATen's kernels (checked at run time).
void EmbeddingBag(ConvertContext& ctx) {
  RelaxBuilder& bb = ctx.bb;
  TensorInfo w = ctx.Info(0), idx = ctx.Info(1), off = ctx.Info(2);
  if (w.ndim() != 2) throw std::runtime_error("embedding_bag weight must be 2-d");
  if (idx.ndim() != 1 || off.ndim() != 1) {
    throw std::runtime_error("embedding_bag with 2-d indices (F.embedding_bag flattens them "
                             "and builds the offsets before the call)");
  }
  if (!IsFloatDType(w.dtype)) throw std::runtime_error("embedding_bag of a " + w.dtype + " weight");
  const int64_t mode = ctx.Int(4);
  const bool include_last_offset = ctx.Bool(7), has_psw = !ctx.IsNone(6);
  const bool has_padding = ctx.NumInputs() > 8 && !ctx.IsNone(8);
  if (mode < 0 || mode > 2) throw std::runtime_error("unknown embedding_bag mode");
  if (has_psw && mode != 0) {
    throw std::runtime_error("embedding_bag: per_sample_weights only with mode='sum'");
  }
  const int64_t num = w.shape[0], dim = w.shape[1], n_idx = idx.shape[0], n_off = off.shape[0];
  const int64_t bags = n_off - (include_last_offset ? 1 : 0);
  if (bags < 0) throw std::runtime_error("embedding_bag: include_last_offset with no offsets");
  int64_t padding_idx = 0;
  if (has_padding) {
    padding_idx = ctx.Int(8);
    if (padding_idx < -num || padding_idx >= num) {
      throw std::runtime_error("embedding_bag: padding_idx must be within the number of embeddings");
    }
  }
  // Indices and offsets of different integer types are both used as int64.
  const std::string index_dtype = idx.dtype == "int32" && off.dtype == "int32" ? "int32" : "int64";
  if ((idx.dtype != "int32" && idx.dtype != "int64") ||
      (off.dtype != "int32" && off.dtype != "int64")) {
    throw std::runtime_error("embedding_bag indices and offsets must be int32 or int64");
  }
  // ATen's "sum" fast path (float32/16, bfloat16, a dense weight, no
  // padding_idx) leaves offset2bag empty.
  const bool fast_sum = mode == 0 && w.dtype != "float64" && !has_padding;
  // bag_size / max_indices of "sum" with include_last_offset have one entry per
  // offset in the forward-only kernel (a weight that does not require grad)
  // and one per bag in the other: the profiled output says which eager ran;
  // when it is unknown they are left unset (an error only if they are used).
  bool requires_grad_path = false, bookkeeping_known = true;
  if (mode == 0 && include_last_offset) {
    auto profiled = ProfiledLength(ctx.op.outputs.at(2));
    requires_grad_path = profiled && *profiled == bags;
    bookkeeping_known = profiled && (*profiled == bags || *profiled == n_off);
  }
  const int64_t bag_len = mode == 0 && !requires_grad_path ? n_off : bags;
  std::vector<RelaxBuilder::OutputType> outs = {
      {{bags, dim}, w.dtype},
      {{fast_sum ? 0 : n_idx}, index_dtype},
      {{bag_len}, index_dtype},
      {mode == 2 ? std::vector<int64_t>{bags, dim} : std::vector<int64_t>{bag_len}, index_dtype}};
  std::vector<int64_t> cfg = {mode, include_last_offset, has_psw, has_padding, padding_idx,
                              requires_grad_path};
  Expr psw = has_psw ? ctx.Tensor(6) : bb.Constant(at::zeros({0}, ScalarTypeOf(w.dtype)));
  Expr result = bb.CallExternTuple(
      "torch_tvm.kernels.aten_embedding_bag",
      {ctx.Tensor(0), ctx.Tensor(1), ctx.Tensor(2), psw, bb.Constant(at::tensor(cfg, at::kLong))},
      outs);
  for (size_t i = 0; i < outs.size(); ++i) {
    if (i < 2 || bookkeeping_known) ctx.SetOutput(i, bb.TupleGetItem(result, i));
  }
}

// The elements [start, end) with `step` that slice(dim, start?, end?, step)
// takes from an axis of length n, clamped as PyTorch clamps them.
struct SliceRange {
  int64_t start, end, step;
  int64_t Length() const { return (end - start + step - 1) / step; }
};

SliceRange ResolveSlice(ConvertContext& ctx, size_t first, int64_t n) {
  int64_t start = ctx.IsNone(first) ? 0 : ctx.Int(first);
  int64_t end = ctx.IsNone(first + 1) ? n : ctx.Int(first + 1);
  int64_t step = ctx.Int(first + 2);
  if (step <= 0) throw std::runtime_error("slice step must be positive");
  auto clamp = [n](int64_t v) {
    if (v < 0) v += n;
    return std::min(std::max<int64_t>(v, 0), n);
  };
  start = clamp(start);
  return {start, std::max(clamp(end), start), step};
}

// slice.Tensor(self, dim, start?, end?, step)
void Slice(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  SliceRange r = ResolveSlice(ctx, 2, info.shape[dim]);
  auto& bb = ctx.bb;
  ctx.SetOutput(0, bb.Op("strided_slice", ctx.Tensor(0), bb.IntTuple({dim}), bb.IntTuple({r.start}),
                         bb.IntTuple({r.end}), bb.IntTuple({r.step}), true));
}

// `self` with the elements `r` of axis `dim` replaced by `src`, which has
// exactly that slice's shape and self's dtype.
Expr ScatterSlice(ConvertContext& ctx, const Expr& self, const Expr& src, int64_t dim, SliceRange r) {
  RelaxBuilder& bb = ctx.bb;
  TensorInfo info = bb.InfoOf(self), src_info = bb.InfoOf(src);
  std::vector<int64_t> expected = info.shape;
  expected[dim] = r.Length();
  if (src_info.shape != expected) {
    throw std::runtime_error("slice_scatter: src must have the shape of the slice of self");
  }
  if (src_info.dtype != info.dtype) {
    throw std::runtime_error("slice_scatter of a " + src_info.dtype + " src into a " + info.dtype +
                             " tensor");
  }
  const int64_t n = info.shape[dim];
  if (r.Length() == 0) return self;
  if (r.step == 1 || r.Length() == 1) {  // [before, src, after] along dim
    const int64_t stop = r.start + (r.Length() - 1) * r.step + 1;
    std::vector<Expr> parts;
    if (r.start > 0) parts.push_back(SliceDim(bb, self, dim, 0, r.start));
    parts.push_back(src);
    if (stop < n) parts.push_back(SliceDim(bb, self, dim, stop, n));
    return parts.size() == 1 ? parts[0] : bb.Op("concat", bb.Tuple(parts), dim);
  }
  // A strided slice: gather src along dim to every position (constant
  // indices, all in range), then select where the slice lands.
  at::Tensor index = at::zeros({n}, at::kLong), mask = at::zeros({n}, at::kBool);
  for (int64_t k = 0; k < r.Length(); ++k) {
    index[r.start + k * r.step] = k;
    mask[r.start + k * r.step] = true;
  }
  std::vector<int64_t> bshape(info.ndim(), 1);
  bshape[dim] = n;
  Expr spread = bb.Op("take", src, bb.Constant(index), dim, std::string("fast"));
  return bb.Op("where", bb.Constant(mask.reshape(bshape)), spread, self);
}

// slice_scatter(self, src, dim, start?, end?, step)
void SliceScatter(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("slice_scatter of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(2), info.ndim());
  ctx.SetOutput(0, ScatterSlice(ctx, ctx.Tensor(0), ctx.Tensor(1), dim,
                                ResolveSlice(ctx, 3, info.shape[dim])));
}

// select_scatter(self, src, dim, index): src has self's shape without dim.
void SelectScatter(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("select_scatter of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(2), info.ndim());
  int64_t n = info.shape[dim], index = ctx.Int(3);
  if (index < -n || index >= n) throw std::runtime_error("select_scatter: index out of range");
  if (index < 0) index += n;
  Expr src = ctx.bb.Op("expand_dims", ctx.Tensor(1), IntArray({dim}));
  ctx.SetOutput(0, ScatterSlice(ctx, ctx.Tensor(0), src, dim, {index, index + 1, 1}));
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
  reg.Register("aten::embedding_bag", EmbeddingBag);
  reg.Register("aten::embedding_bag.padding_idx", EmbeddingBag);
  reg.Register("aten::slice.Tensor", Slice);
  reg.Register("aten::slice_scatter", SliceScatter);
  reg.Register("aten::select_scatter", SelectScatter);
  reg.Register("aten::expand", Expand);
  // expand_as(self, other): other's shape (ECA / SE attention gates).
  reg.Register("aten::expand_as", [](ConvertContext& c) {
    c.SetOutput(0, c.bb.Op("broadcast_to", c.Tensor(0), c.bb.Shape(c.Info(1).shape)));
  });
}

}  // namespace torch_tvm::convert
