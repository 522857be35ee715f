// Reads at run-time indices: index_select, gather, advanced indexing
// (index.Tensor). Every index tensor passes through CheckedIndex first (an
// extern kernel that raises on an out-of-range index as eager does, and wraps
// negative ones where eager wraps them): TVM's take / gather_elements would
// read past the buffer instead.
#include <numeric>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

// index_select(self, dim, index): index is 1-d (or 0-d); negatives raise.
void IndexSelect(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0), idx = ctx.Info(2);
  if (info.ndim() == 0) throw std::runtime_error("index_select of a 0-d tensor");
  if (idx.ndim() > 1) throw std::runtime_error("index_select index must be 0-d or 1-d");
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  Expr index = CheckedIndex(ctx.bb, ctx.Tensor(2), info.shape[dim], false);
  if (idx.ndim() == 0) index = ctx.bb.Op("reshape", index, IntArray({1}));
  ctx.SetOutput(0, ctx.bb.Op("take", ctx.Tensor(0), index, dim, std::string("fast")));
}

// gather(self, dim, index, sparse_grad): out[i][j] = self[index[i][j]][j] (dim 0).
void Gather(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0), idx = ctx.Info(2);
  if (info.ndim() == 0 || idx.ndim() != info.ndim()) {
    throw std::runtime_error("gather: index and input must have the same rank (>= 1)");
  }
  int64_t dim = NormalizeDim(ctx.Int(1), info.ndim());
  for (int64_t d = 0; d < info.ndim(); ++d) {
    if (d != dim && idx.shape[d] > info.shape[d]) {
      throw std::runtime_error("gather: index is larger than the input outside dim");
    }
  }
  Expr index = CheckedIndex(ctx.bb, ctx.Tensor(2), info.shape[dim], false);
  ctx.SetOutput(0, ctx.bb.Op("gather_elements", ctx.Tensor(0), index, dim));
}

// Broadcast shape of index tensor shapes (numpy rules).
std::vector<int64_t> BroadcastShapes(const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    for (size_t k = 0; k < s.size(); ++k) {
      int64_t& o = out[rank - s.size() + k];
      if (s[k] == o || s[k] == 1) continue;
      if (o != 1) throw std::runtime_error("index tensors do not broadcast together");
      o = s[k];
    }
  }
  return out;
}

// index.Tensor(self, indices: Tensor?[]): advanced indexing. The indexed
// dims are moved to the front and flattened into one, the broadcast index
// tensors combined into one flat index, and `take` reads along it. The
// result dims of the indices go where the first indexed dim was when the
// indexed dims are adjacent, else to the front (numpy's rule).
void Index(ConvertContext& ctx) {
  TensorInfo info = ctx.Info(0);
  const LoweredValue& list = ctx.Input(1);
  if (list.kind != LoweredValue::Kind::kTensorList) {
    throw std::runtime_error("index: indices are not a list of tensors");
  }
  const auto& entries = list.tensors;
  if (static_cast<int64_t>(entries.size()) > info.ndim()) {
    throw std::runtime_error("index: too many indices");
  }
  std::vector<int64_t> dims;
  std::vector<std::vector<int64_t>> shapes;
  for (size_t d = 0; d < entries.size(); ++d) {
    if (!entries[d].defined()) continue;
    TensorInfo ii = ctx.bb.InfoOf(entries[d]);
    if (ii.dtype == "bool" || ii.dtype == "uint8") {
      throw std::runtime_error("index: a boolean mask gives a data-dependent shape");
    }
    dims.push_back(static_cast<int64_t>(d));
    shapes.push_back(ii.shape);
  }
  if (dims.empty()) {
    ctx.SetOutput(0, ctx.Tensor(0));
    return;
  }
  auto& bb = ctx.bb;
  if (dims.size() == 1) {  // one index tensor: take along its dim
    int64_t d = dims[0];
    Expr index = CheckedIndex(bb, entries[d], info.shape[d], true);
    ctx.SetOutput(0, bb.Op("take", ctx.Tensor(0), index, d, std::string("fast")));
    return;
  }
  std::vector<int64_t> bshape = BroadcastShapes(shapes);
  std::vector<int64_t> perm = dims, rest_shape;
  std::vector<bool> indexed(info.ndim(), false);
  for (int64_t d : dims) indexed[d] = true;
  for (int64_t d = 0; d < info.ndim(); ++d) {
    if (!indexed[d]) {
      perm.push_back(d);
      rest_shape.push_back(info.shape[d]);
    }
  }
  Expr x = ctx.Tensor(0);
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) identity &= perm[i] == static_cast<int64_t>(i);
  if (!identity) x = bb.Op("permute_dims", x, IntArray(perm));
  int64_t flat_size = 1;
  for (int64_t d : dims) flat_size *= info.shape[d];
  std::vector<int64_t> flat_shape = {flat_size};
  flat_shape.insert(flat_shape.end(), rest_shape.begin(), rest_shape.end());
  x = bb.Op("reshape", x, IntArray(flat_shape));

  Expr flat;
  int64_t stride = 1;
  for (size_t k = dims.size(); k-- > 0;) {
    int64_t d = dims[k];
    Expr idx = CheckedIndex(bb, entries[d], info.shape[d], true);
    if (shapes[k] != bshape) idx = bb.Op("broadcast_to", idx, bb.Shape(bshape));
    if (stride != 1) idx = bb.Op("multiply", idx, bb.ScalarConstant(stride, "int64"));
    flat = flat.defined() ? bb.Op("add", flat, idx) : idx;
    stride *= info.shape[d];
  }
  Expr out = bb.Op("take", x, flat, 0, std::string("fast"));  // bshape + rest
  bool adjacent = dims.back() - dims.front() + 1 == static_cast<int64_t>(dims.size());
  int64_t before = dims.front();
  if (adjacent && before > 0) {
    // (bshape, rest_before, rest_after) -> (rest_before, bshape, rest_after)
    int64_t nb = static_cast<int64_t>(bshape.size());
    int64_t nrest = static_cast<int64_t>(rest_shape.size());
    std::vector<int64_t> p;
    for (int64_t i = 0; i < before; ++i) p.push_back(nb + i);
    for (int64_t i = 0; i < nb; ++i) p.push_back(i);
    for (int64_t i = before; i < nrest; ++i) p.push_back(nb + i);
    out = bb.Op("permute_dims", out, IntArray(p));
  }
  ctx.SetOutput(0, out);
}

// A boolean or uint8 index is a mask: the result's length is the count of
// true entries, a value of the data. Refused when the front door shows the
// index list's element dtypes, so the call stays in PyTorch instead of taking
// its whole group down at compile time.
std::optional<std::string> CheckIndex(const OpSignature& op) {
  for (const ArgInfo& e : op.Arg(1).elements) {
    auto st = TensorArgDType(e);
    if (st && (*st == at::kBool || *st == at::kByte)) {
      return "a boolean mask index gives a data-dependent shape";
    }
  }
  return std::nullopt;
}

}  // namespace

TORCH_TVM_CONVERTERS(gather) {
  reg.Register("aten::index_select", IndexSelect);
  reg.Register("aten::gather", Gather);
  reg.Register("aten::index.Tensor", Index, CheckIndex);
}

}  // namespace torch_tvm::convert
