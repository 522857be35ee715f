// Shape ops: flatten, reshape/view, contiguous, cat, chunk/split,
// squeeze/unsqueeze, and the list plumbing (prim::ListConstruct/ListUnpack)
// that carries tensor lists between them inside a group.
#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

void Reshape(ConvertContext& ctx) {
  ctx.SetOutput(0, ctx.bb.Op("reshape", ctx.Tensor(0), IntArray(ctx.Ints(1))));
}

// reshape_as / view_as: other's shape.
void ReshapeAs(ConvertContext& ctx) {
  ctx.SetOutput(0, ctx.bb.Op("reshape", ctx.Tensor(0), IntArray(ctx.Info(1).shape)));
}

// unflatten.int(self, dim, sizes): dim split into sizes (one may be -1).
void Unflatten(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("unflatten of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  std::vector<int64_t> sizes = ctx.Ints(2);
  std::vector<int64_t> shape(info.shape.begin(), info.shape.begin() + dim);
  shape.insert(shape.end(), sizes.begin(), sizes.end());
  shape.insert(shape.end(), info.shape.begin() + dim + 1, info.shape.end());
  ctx.SetOutput(0, ctx.bb.Op("reshape", ctx.Tensor(0), IntArray(shape)));
}

// (self, start_dim, end_dim)
void Flatten(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) {
    ctx.SetOutput(0, ctx.bb.Op("reshape", ctx.Tensor(0), IntArray({1})));
    return;
  }
  int64_t start = NormalizeDim(ctx.Int(1), info.ndim());
  int64_t end = NormalizeDim(ctx.Int(2), info.ndim());
  std::vector<int64_t> shape(info.shape.begin(), info.shape.begin() + start);
  int64_t merged = 1;
  for (int64_t i = start; i <= end; ++i) merged *= info.shape[i];
  shape.push_back(merged);
  shape.insert(shape.end(), info.shape.begin() + end + 1, info.shape.end());
  ctx.SetOutput(0, ctx.bb.Op("reshape", ctx.Tensor(0), IntArray(shape)));
}

void Cat(ConvertContext& ctx) {
  auto tensors = ctx.TensorList(0);
  int64_t ndim = ctx.bb.InfoOf(tensors.at(0)).ndim();
  ctx.SetOutput(0, ctx.bb.Op("concat", ctx.bb.Tuple(tensors), NormalizeDim(ctx.Int(1), ndim)));
}

// Splits `x` along `dim` at `sizes` boundaries and returns the pieces.
std::vector<Expr> SplitSizes(ConvertContext& ctx, const Expr& x, const std::vector<int64_t>& sizes,
                             int64_t dim) {
  std::vector<int64_t> indices;
  int64_t acc = 0;
  for (size_t i = 0; i + 1 < sizes.size(); ++i) indices.push_back(acc += sizes[i]);
  if (sizes.size() == 1) return {x};
  Expr parts = ctx.bb.Op("split", x, IntArray(indices), dim);
  std::vector<Expr> out;
  for (size_t i = 0; i < sizes.size(); ++i) out.push_back(ctx.bb.TupleGetItem(parts, i));
  return out;
}

// torch.split(x, split_size): equal pieces of split_size, the last smaller.
void SplitEqual(ConvertContext& ctx, int64_t piece, int64_t dim) {
  TensorInfo info = ctx.Info(0);
  dim = NormalizeDim(dim, info.ndim());
  int64_t n = info.shape[dim];
  if (piece <= 0) throw std::runtime_error("split size must be positive");
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += piece) sizes.push_back(std::min(piece, n - start));
  if (sizes.empty()) sizes.push_back(0);
  ctx.SetOutputList(0, SplitSizes(ctx, ctx.Tensor(0), sizes, dim));
}

// torch.chunk: ceil(n / chunks)-sized pieces, so there may be fewer than chunks.
std::vector<Expr> ChunkPieces(ConvertContext& ctx, int64_t chunks, int64_t dim) {
  TensorInfo info = ctx.Info(0);
  dim = NormalizeDim(dim, info.ndim());
  if (chunks <= 0) throw std::runtime_error("chunks must be positive");
  int64_t n = info.shape[dim];
  int64_t piece = std::max<int64_t>((n + chunks - 1) / chunks, 1);
  std::vector<int64_t> sizes;
  for (int64_t start = 0; start < n; start += piece) sizes.push_back(std::min(piece, n - start));
  if (sizes.empty()) sizes.push_back(0);
  return SplitSizes(ctx, ctx.Tensor(0), sizes, dim);
}

void SplitWithSizes(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  int64_t dim = NormalizeDim(ctx.Int(2), info.ndim());
  ctx.SetOutputList(0, SplitSizes(ctx, ctx.Tensor(0), ctx.Ints(1), dim));
}

// squeeze with no dims drops every size-1 dim; with dims, only those of size 1.
void Squeeze(ConvertContext& ctx, std::optional<std::vector<int64_t>> dims) {
  TensorInfo info = ctx.Info(0);
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < info.ndim(); ++d) {
    bool named = !dims;
    if (dims) {
      for (int64_t want : *dims) named |= NormalizeDim(want, info.ndim()) == d;
    }
    if (named && info.shape[d] == 1) axes.push_back(d);
  }
  if (axes.empty()) {
    ctx.SetOutput(0, ctx.Tensor(0));
    return;
  }
  ctx.SetOutput(0, ctx.bb.Op("squeeze", ctx.Tensor(0), IntArray(axes)));
}

void Unsqueeze(ConvertContext& ctx) {
  int64_t dim = NormalizeDim(ctx.Int(1), ctx.Info(0).ndim() + 1);
  ctx.SetOutput(0, ctx.bb.Op("expand_dims", ctx.Tensor(0), IntArray({dim})));
}

// constant_pad_nd(self, pad, value) / pad(self, pad, mode, value?): pad lists
// (before, after) pairs from the last dim backwards; Relax takes them per dim
// from the first. Only non-negative constant padding is converted.
void ConstantPad(ConvertContext& ctx, size_t value_index) {
  TensorInfo info = ctx.Info(0);
  std::vector<int64_t> pad = ctx.Ints(1);
  if (pad.size() % 2 || pad.size() / 2 > static_cast<size_t>(info.ndim())) {
    throw std::runtime_error("pad: bad pad list");
  }
  std::vector<int64_t> width(2 * info.ndim(), 0);
  for (size_t i = 0; i < pad.size() / 2; ++i) {
    if (pad[2 * i] < 0 || pad[2 * i + 1] < 0) throw std::runtime_error("pad: negative padding");
    size_t dim = info.ndim() - 1 - i;
    width[2 * dim] = pad[2 * i];
    width[2 * dim + 1] = pad[2 * i + 1];
  }
  double value = (value_index < ctx.NumInputs() && !ctx.IsNone(value_index))
                     ? ctx.Double(value_index) : 0.0;
  ctx.SetOutput(0, ctx.bb.Op("nn.pad", ctx.Tensor(0), IntArray(width), std::string("constant"),
                             value));
}

std::optional<std::string> NotConstantPad(const OpSignature& op) {
  auto mode = op.ConstantArg(2);
  if (!mode || !mode->isString()) return "pad mode not known at compile time";
  if (mode->toStringRef() != "constant") return "pad mode '" + mode->toStringRef() + "'";
  return std::nullopt;
}

}  // namespace

TORCH_TVM_CONVERTERS(shape) {
  reg.Register("aten::reshape", Reshape);
  reg.Register("aten::view", Reshape);
  reg.Register("aten::reshape_as", ReshapeAs);
  reg.Register("aten::view_as", ReshapeAs);
  reg.Register("aten::flatten.using_ints", Flatten);
  reg.Register("aten::unflatten.int", Unflatten);
  reg.Register("aten::contiguous", [](ConvertContext& c) { c.SetOutput(0, c.Tensor(0)); });
  reg.Register("aten::cat", Cat);
  reg.Register("aten::constant_pad_nd", [](ConvertContext& c) { ConstantPad(c, 2); });
  reg.Register("aten::pad", [](ConvertContext& c) { ConstantPad(c, 3); }, NotConstantPad);
  reg.Register("aten::chunk", [](ConvertContext& c) {
    c.SetOutputList(0, ChunkPieces(c, c.Int(1), c.Int(2)));
  });
  // Tracing rewrites chunk into prim::ConstantChunk, with chunks/dim as
  // attributes; the front door passes them as arguments 1 and 2.
  reg.Register("prim::ConstantChunk", [](ConvertContext& c) {
    auto parts = ChunkPieces(c, c.Int(1), c.Int(2));
    if (parts.size() != c.op.NumOutputs()) throw std::runtime_error("chunk count mismatch");
    for (size_t i = 0; i < parts.size(); ++i) c.SetOutput(i, parts[i]);
  });
  reg.Register("aten::split.Tensor", [](ConvertContext& c) { SplitEqual(c, c.Int(1), c.Int(2)); });
  reg.Register("aten::split_with_sizes", SplitWithSizes);
  reg.Register("aten::split.sizes", SplitWithSizes);
  reg.Register("aten::squeeze", [](ConvertContext& c) { Squeeze(c, std::nullopt); });
  reg.Register("aten::squeeze.dim", [](ConvertContext& c) { Squeeze(c, c.Ints(1)); });
  reg.Register("aten::squeeze.dims", [](ConvertContext& c) { Squeeze(c, c.Ints(1)); });
  reg.Register("aten::unsqueeze", Unsqueeze);
  // A list of tensors, or a list of compile-time scalars (a view's shape).
  reg.RegisterCompileTime("prim::ListConstruct", [](ConvertContext& c) {
    auto type = c.op.outputs.at(0)->expect<c10::ListType>()->getElementType();
    if (type->isSubtypeOf(*c10::TensorType::get())) {
      std::vector<Expr> items;
      for (size_t i = 0; i < c.NumInputs(); ++i) items.push_back(c.Tensor(i));
      c.SetOutputList(0, items);
      return;
    }
    c10::impl::GenericList list(type);
    for (size_t i = 0; i < c.NumInputs(); ++i) list.push_back(c.Constant(i));
    c.SetOutputConstant(0, std::move(list));
  });
  // list[i] of a tensor list (scripted code indexing unbind/split/chunk results).
  reg.Register("aten::__getitem__.t", [](ConvertContext& c) {
    auto items = c.TensorList(0);
    int64_t n = static_cast<int64_t>(items.size()), i = c.Int(1);
    if (i < -n || i >= n) throw std::runtime_error("list index out of range");
    c.SetOutput(0, items[i < 0 ? i + n : i]);
  });
  reg.Register("prim::ListUnpack", [](ConvertContext& c) {
    auto items = c.TensorList(0);
    if (items.size() != c.op.NumOutputs()) throw std::runtime_error("list length mismatch");
    for (size_t i = 0; i < items.size(); ++i) c.SetOutput(i, items[i]);
  });
}

}  // namespace torch_tvm::convert
