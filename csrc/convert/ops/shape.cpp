// Shape ops: flatten, reshape/view, contiguous, cat, stack, chunk/split,
// unbind, select, narrow, roll, flip, repeat/tile, movedim, padding (constant,
// reflect, replicate, circular), squeeze/unsqueeze, and the list plumbing (prim::ListConstruct/ListUnpack)
// that carries tensor lists between them inside a group.
#include <algorithm>

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

// reflect / replicate / circular padding, one dim at a time by slices and a
// concat (pad lists (before, after) pairs from the last dim backwards).
Expr ModePad(RelaxBuilder& bb, Expr x, const std::vector<int64_t>& pad, const std::string& mode) {
  TensorInfo info = bb.InfoOf(x);
  if (pad.size() % 2 || pad.size() / 2 > static_cast<size_t>(info.ndim())) {
    throw std::runtime_error("pad: bad pad list");
  }
  for (size_t i = 0; i < pad.size() / 2; ++i) {
    int64_t dim = info.ndim() - 1 - static_cast<int64_t>(i);
    int64_t before = pad[2 * i], after = pad[2 * i + 1], n = info.shape[dim];
    if (before < 0 || after < 0) throw std::runtime_error("pad: negative " + mode + " padding");
    if (before == 0 && after == 0) continue;
    std::vector<Expr> parts;
    if (mode == "reflect") {
      if (before >= n || after >= n) {
        throw std::runtime_error("reflect padding must be smaller than the dimension");
      }
      if (before) parts.push_back(bb.Op("flip", SliceDim(bb, x, dim, 1, before + 1), dim));
      parts.push_back(x);
      if (after) parts.push_back(bb.Op("flip", SliceDim(bb, x, dim, n - 1 - after, n - 1), dim));
    } else if (mode == "replicate") {
      if (n == 0) throw std::runtime_error("replicate padding of an empty dimension");
      auto edge = [&](int64_t at, int64_t count) {
        std::vector<int64_t> reps(info.ndim(), 1);
        reps[dim] = count;
        return bb.Op("tile", SliceDim(bb, x, dim, at, at + 1), IntArray(reps));
      };
      if (before) parts.push_back(edge(0, before));
      parts.push_back(x);
      if (after) parts.push_back(edge(n - 1, after));
    } else if (mode == "circular") {
      if (before > n || after > n) {
        throw std::runtime_error("circular padding must not exceed the dimension");
      }
      if (before) parts.push_back(SliceDim(bb, x, dim, n - before, n));
      parts.push_back(x);
      if (after) parts.push_back(SliceDim(bb, x, dim, 0, after));
    } else {
      throw std::runtime_error("pad mode '" + mode + "'");
    }
    x = bb.Op("concat", bb.Tuple(parts), dim);
  }
  return x;
}

// pad(self, pad, mode, value?)
void Pad(ConvertContext& ctx) {
  const std::string& mode = ctx.Constant(2).toStringRef();
  if (mode == "constant") {
    ConstantPad(ctx, 3);
    return;
  }
  ctx.SetOutput(0, ModePad(ctx.bb, ctx.Tensor(0), ctx.Ints(1), mode));
}

std::optional<std::string> UnknownPadMode(const OpSignature& op) {
  auto mode = op.ConstantArg(2);
  if (!mode || !mode->isString()) return "pad mode not known at compile time";
  const std::string& m = mode->toStringRef();
  if (m != "constant" && m != "reflect" && m != "replicate" && m != "circular") {
    return "pad mode '" + m + "'";
  }
  return std::nullopt;
}

// roll(self, shifts, dims): without dims the flattened tensor rolls.
void Roll(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  std::vector<int64_t> shifts = ctx.Ints(1), dims = ctx.Ints(2);
  auto& bb = ctx.bb;
  Expr x = ctx.Tensor(0);
  bool flat = dims.empty();
  if (flat) {
    if (shifts.size() != 1) throw std::runtime_error("roll without dims takes one shift");
    int64_t numel = 1;
    for (int64_t s : info.shape) numel *= s;
    x = bb.Op("reshape", x, IntArray({numel}));
    dims = {0};
  }
  if (shifts.size() != dims.size()) throw std::runtime_error("roll: shifts and dims differ");
  int64_t ndim = bb.InfoOf(x).ndim();
  for (size_t i = 0; i < dims.size(); ++i) {
    int64_t dim = NormalizeDim(dims[i], ndim);
    int64_t n = bb.InfoOf(x).shape[dim];
    if (n == 0) continue;
    int64_t s = ((shifts[i] % n) + n) % n;
    if (s == 0) continue;
    x = bb.Op("concat", bb.Tuple({SliceDim(bb, x, dim, n - s, n), SliceDim(bb, x, dim, 0, n - s)}),
              dim);
  }
  if (flat) x = bb.Op("reshape", x, IntArray(info.shape));
  ctx.SetOutput(0, x);
}

void Flip(ConvertContext& ctx) {
  Expr x = ctx.Tensor(0);
  int64_t ndim = ctx.Info(0).ndim();
  std::vector<int64_t> dims = ctx.Ints(1);
  for (auto& d : dims) d = NormalizeDim(d, ndim);
  std::sort(dims.begin(), dims.end());
  dims.erase(std::unique(dims.begin(), dims.end()), dims.end());
  if (ndim == 0) dims.clear();
  for (int64_t d : dims) x = ctx.bb.Op("flip", x, d);
  ctx.SetOutput(0, dims.empty() ? ctx.bb.Op("reshape", x, IntArray(ctx.Info(0).shape)) : x);
}

// repeat(self, repeats): len(repeats) >= ndim, new dims lead. tile(self,
// dims): dims padded with leading ones to ndim, then a repeat.
void Repeat(ConvertContext& ctx, bool tile) {
  TensorInfo info = ctx.Info(0);
  std::vector<int64_t> reps = ctx.Ints(1);
  if (tile && reps.size() < info.shape.size()) reps.insert(reps.begin(), info.ndim() - reps.size(), 1);
  if (reps.size() < info.shape.size()) {
    throw std::runtime_error("repeat: fewer repeats than dimensions");
  }
  for (int64_t r : reps) {
    if (r < 0) throw std::runtime_error("repeat: negative count");
  }
  std::vector<int64_t> shape(reps.size() - info.shape.size(), 1);
  shape.insert(shape.end(), info.shape.begin(), info.shape.end());
  Expr x = ctx.bb.Op("reshape", ctx.Tensor(0), IntArray(shape));
  ctx.SetOutput(0, ctx.bb.Op("tile", x, IntArray(reps)));
}

// stack(tensors, dim): each gets a new axis, then one concat.
void Stack(ConvertContext& ctx) {
  auto tensors = ctx.TensorList(0);
  if (tensors.empty()) throw std::runtime_error("stack of no tensors");
  int64_t dim = NormalizeDim(ctx.Int(1), ctx.bb.InfoOf(tensors[0]).ndim() + 1);
  for (auto& t : tensors) t = ctx.bb.Op("expand_dims", t, IntArray({dim}));
  ctx.SetOutput(0, ctx.bb.Op("concat", ctx.bb.Tuple(tensors), dim));
}

// select.int(self, dim, index): a negative index counts from the end.
Expr Select(ConvertContext& ctx, const Expr& x, int64_t dim, int64_t index) {
  TensorInfo info = ctx.bb.InfoOf(x);
  int64_t n = info.shape[dim];
  if (index < -n || index >= n) {
    throw std::runtime_error("select: index " + std::to_string(index) +
                             " out of range for dimension of size " + std::to_string(n));
  }
  if (index < 0) index += n;
  return ctx.bb.Op("squeeze", SliceDim(ctx.bb, x, dim, index, index + 1), IntArray({dim}));
}

void Unbind(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("unbind of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  int64_t n = info.shape[dim];
  std::vector<Expr> out;
  if (n > 0) {
    for (Expr part : SplitSizes(ctx, ctx.Tensor(0), std::vector<int64_t>(n, 1), dim)) {
      out.push_back(ctx.bb.Op("squeeze", part, IntArray({dim})));
    }
  }
  ctx.SetOutputList(0, out);
}

// narrow(self, dim, start, length): start may be negative.
void Narrow(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  int64_t n = info.shape[dim], start = ctx.Int(2), length = ctx.Int(3);
  if (start < -n || start > n) throw std::runtime_error("narrow: start out of range");
  if (start < 0) start += n;
  if (length < 0 || start + length > n) throw std::runtime_error("narrow: length out of range");
  ctx.SetOutput(0, SliceDim(ctx.bb, ctx.Tensor(0), dim, start, start + length));
}

// movedim(self, source, destination) (int and int-list overloads).
void MoveDim(ConvertContext& ctx) {
  int64_t ndim = ctx.Info(0).ndim();
  std::vector<int64_t> src = ctx.Ints(1), dst = ctx.Ints(2);
  if (src.size() != dst.size()) throw std::runtime_error("movedim: source and destination differ");
  std::vector<int64_t> perm(ndim, -1);
  std::vector<bool> used(ndim, false);
  for (size_t i = 0; i < src.size(); ++i) {
    int64_t s = NormalizeDim(src[i], ndim), d = NormalizeDim(dst[i], ndim);
    if (perm[d] != -1 || used[s]) throw std::runtime_error("movedim: repeated dim");
    perm[d] = s;
    used[s] = true;
  }
  int64_t next = 0;
  for (int64_t d = 0; d < ndim; ++d) {
    if (perm[d] != -1) continue;
    while (used[next]) ++next;
    perm[d] = next;
    used[next] = true;
  }
  if (ndim == 0) {
    ctx.SetOutput(0, ctx.Tensor(0));
    return;
  }
  ctx.SetOutput(0, ctx.bb.Op("permute_dims", ctx.Tensor(0), IntArray(perm)));
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
  reg.Register("aten::pad", Pad, UnknownPadMode);
  for (const char* s : {"aten::reflection_pad1d", "aten::reflection_pad2d",
                        "aten::reflection_pad3d"}) {
    reg.Register(s, [](ConvertContext& c) {
      c.SetOutput(0, ModePad(c.bb, c.Tensor(0), c.Ints(1), "reflect"));
    });
  }
  for (const char* s : {"aten::replication_pad1d", "aten::replication_pad2d",
                        "aten::replication_pad3d"}) {
    reg.Register(s, [](ConvertContext& c) {
      c.SetOutput(0, ModePad(c.bb, c.Tensor(0), c.Ints(1), "replicate"));
    });
  }
  reg.Register("aten::roll", Roll);
  reg.Register("aten::flip", Flip);
  reg.Register("aten::repeat", [](ConvertContext& c) { Repeat(c, false); });
  reg.Register("aten::tile", [](ConvertContext& c) { Repeat(c, true); });
  reg.Register("aten::stack", Stack);
  reg.Register("aten::unbind.int", Unbind);
  reg.Register("aten::select.int", [](ConvertContext& c) {
    TensorInfo info = c.Info(0);
    if (info.ndim() == 0) throw std::runtime_error("select of a 0-d tensor");
    c.SetOutput(0, Select(c, c.Tensor(0), NormalizeDim(c.Int(1), info.ndim()), c.Int(2)));
  });
  reg.Register("aten::narrow", Narrow);
  reg.Register("aten::movedim.int", MoveDim);
  reg.Register("aten::movedim.intlist", MoveDim);
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
      // Every element known (folded shape math): the list stays a compile-time
      // value, so torch.stack([NumToTensor(size), ...]) and the aten::Int
      // after it fold too.
      c10::List<at::Tensor> known;
      for (size_t i = 0; i < c.NumInputs(); ++i) {
        auto k = c.Known(i);
        if (!k || !k->isTensor()) break;
        known.push_back(k->toTensor());
      }
      if (c.NumInputs() > 0 && known.size() == c.NumInputs()) {
        c.SetOutputConstant(0, std::move(known));
        return;
      }
      std::vector<Expr> items;
      for (size_t i = 0; i < c.NumInputs(); ++i) items.push_back(c.Tensor(i));
      c.SetOutputList(0, items);
      return;
    }
    // Tensor?[] (advanced indexing): a None entry is an undefined Expr.
    auto opt = type->cast<c10::OptionalType>();
    if (opt && opt->getElementType()->isSubtypeOf(*c10::TensorType::get())) {
      std::vector<Expr> items;
      for (size_t i = 0; i < c.NumInputs(); ++i) {
        items.push_back(c.IsNone(i) ? Expr() : c.Tensor(i));
      }
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
    const auto& in = c.Input(0);
    if (in.kind == LoweredValue::Kind::kConstant && in.constant.isTensorList()) {
      auto items = in.constant.toTensorVector();  // folded shape math stays folded
      if (items.size() != c.op.NumOutputs()) throw std::runtime_error("list length mismatch");
      for (size_t i = 0; i < items.size(); ++i) c.SetOutputConstant(i, items[i]);
      return;
    }
    auto items = c.TensorList(0);
    if (items.size() != c.op.NumOutputs()) throw std::runtime_error("list length mismatch");
    for (size_t i = 0; i < items.size(); ++i) c.SetOutput(i, items[i]);
  });
}

}  // namespace torch_tvm::convert
