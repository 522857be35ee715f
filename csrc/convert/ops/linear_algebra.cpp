// Dense and matrix ops: linear, addmm, baddbmm, matmul, mm, bmm, einsum,
// diff, and the transposes
// t / transpose / permute that feed them.
#include <cctype>
#include <map>

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
  std::optional<Expr> bias;
  if (!ctx.IsNone(2)) bias = ctx.Tensor(2);
  ctx.SetOutput(0, Dense(ctx.bb, ctx.Tensor(0), ctx.Tensor(1), bias));
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

// baddbmm(self, batch1, batch2, beta, alpha): beta * self + alpha * (b1 @ b2);
// with beta == 0 self is ignored (its NaN and inf do not propagate), as eager.
void BAddBMM(ConvertContext& ctx) {
  auto& bb = ctx.bb;
  Expr prod = Scaled(ctx, MatMul(bb, ctx.Tensor(1), ctx.Tensor(2)), ctx.Double(4));
  double beta = ctx.Double(3);
  if (beta == 0.0) {
    std::vector<int64_t> shape = bb.InfoOf(prod).shape, self = ctx.Info(0).shape;
    if (self.size() > shape.size()) throw std::runtime_error("baddbmm: self has too many dims");
    ctx.SetOutput(0, prod);
    return;
  }
  ctx.SetOutput(0, bb.Op("add", Scaled(ctx, ctx.Tensor(0), beta), prod));
}

// einsum(equation, tensors, path?) with one or two operands and no
// ellipsis or repeated index within an operand: sums, then for two operands
// one batched matmul (batch, free-left, free-right, contracted index groups),
// then a permute to the output order. Anything else is rejected.
std::string EinsumUnsupported(const std::string& eq, size_t operands) {
  if (eq.find("...") != std::string::npos) return "einsum with an ellipsis";
  if (operands < 1 || operands > 2) return "einsum with more than two operands";
  return "";
}

std::vector<int64_t> Positions(const std::string& letters, const std::string& from) {
  std::vector<int64_t> out;
  for (char ch : letters) out.push_back(static_cast<int64_t>(from.find(ch)));
  return out;
}

Expr PermuteTo(RelaxBuilder& bb, const Expr& x, const std::string& have, const std::string& want) {
  if (have == want) return x;
  return bb.Op("permute_dims", x, IntArray(Positions(want, have)));
}

// Sums x (labelled `have`) over the labels not in `keep`; returns the new labels.
Expr SumOut(RelaxBuilder& bb, const Expr& x, std::string& have, const std::string& keep) {
  std::vector<int64_t> axes;
  std::string left;
  for (size_t i = 0; i < have.size(); ++i) {
    if (keep.find(have[i]) == std::string::npos) {
      axes.push_back(static_cast<int64_t>(i));
    } else {
      left += have[i];
    }
  }
  if (axes.empty()) return x;
  have = left;
  return bb.Op("sum", x, IntArray(axes), false);
}

void Einsum(ConvertContext& ctx) {
  auto& bb = ctx.bb;
  std::string eq;
  for (char ch : ctx.Constant(0).toStringRef()) {
    if (ch != ' ') eq += ch;
  }
  auto tensors = ctx.TensorList(1);
  std::string why = EinsumUnsupported(eq, tensors.size());
  if (!why.empty()) throw std::runtime_error(why);
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> ins;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    ins.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (ins.size() != tensors.size()) throw std::runtime_error("einsum: operand count mismatch");
  std::map<char, int64_t> size, count;
  for (size_t k = 0; k < ins.size(); ++k) {
    TensorInfo info = bb.InfoOf(tensors[k]);
    if (static_cast<int64_t>(ins[k].size()) != info.ndim()) {
      throw std::runtime_error("einsum: subscripts do not match the operand's rank");
    }
    for (size_t i = 0; i < ins[k].size(); ++i) {
      char ch = ins[k][i];
      if (!std::isalpha(static_cast<unsigned char>(ch))) throw std::runtime_error("einsum: bad label");
      if (ins[k].find(ch) != i) throw std::runtime_error("einsum with a repeated index (diagonal)");
      if (size.count(ch) && size[ch] != info.shape[i]) {
        throw std::runtime_error("einsum: broadcast index sizes are not supported");
      }
      size[ch] = info.shape[i];
      count[ch]++;
    }
  }
  std::string out;
  if (arrow != std::string::npos) {
    out = eq.substr(arrow + 2);
  } else {  // implicit output: labels used once, in alphabetical order
    for (auto& [ch, n] : count) {
      if (n == 1) out += ch;
    }
  }
  for (char ch : out) {
    if (!size.count(ch) || out.find(ch) != out.rfind(ch)) {
      throw std::runtime_error("einsum: bad output subscripts");
    }
  }
  if (tensors.size() == 1) {
    std::string have = ins[0];
    Expr x = SumOut(bb, tensors[0], have, out);
    ctx.SetOutput(0, PermuteTo(bb, x, have, out));
    return;
  }
  std::string a = ins[0], b = ins[1];
  Expr x = SumOut(bb, tensors[0], a, out + b);
  Expr y = SumOut(bb, tensors[1], b, out + a);
  std::string batch, left, right, contract;
  for (char ch : a) {
    bool in_b = b.find(ch) != std::string::npos, in_out = out.find(ch) != std::string::npos;
    (in_b ? (in_out ? batch : contract) : left) += ch;
  }
  for (char ch : b) {
    if (a.find(ch) == std::string::npos) right += ch;
  }
  auto prod = [&](const std::string& labels) {
    int64_t p = 1;
    for (char ch : labels) p *= size[ch];
    return p;
  };
  std::vector<int64_t> bshape;
  for (char ch : batch) bshape.push_back(size[ch]);
  auto with = [&](std::vector<int64_t> v, std::initializer_list<int64_t> tail) {
    v.insert(v.end(), tail);
    return v;
  };
  x = bb.Op("reshape", PermuteTo(bb, x, a, batch + left + contract),
            IntArray(with(bshape, {prod(left), prod(contract)})));
  y = bb.Op("reshape", PermuteTo(bb, y, b, batch + contract + right),
            IntArray(with(bshape, {prod(contract), prod(right)})));
  Expr z = MatMul(bb, x, y);
  std::vector<int64_t> zshape = bshape;
  for (char ch : left + right) zshape.push_back(size[ch]);
  z = bb.Op("reshape", z, IntArray(zshape));
  ctx.SetOutput(0, PermuteTo(bb, z, batch + left + right, out));
}

std::optional<std::string> EinsumCheck(const OpSignature& op) {
  auto eq = op.ConstantArg(0);
  if (!eq || !eq->isString()) return "einsum equation not known at compile time";
  std::string e = eq->toStringRef();
  if (e.find("...") != std::string::npos) return "einsum with an ellipsis";
  size_t arrow = e.find("->");
  size_t operands = 1;
  for (size_t i = 0; i < std::min(arrow, e.size()); ++i) operands += e[i] == ',';
  if (operands > 2) return "einsum with more than two operands";
  return std::nullopt;
}

// diff(self, n, dim, prepend?, append?): n forward differences along dim
// (x[1:] != x[:-1] for bool, as eager).
void Diff(ConvertContext& ctx) {
  auto& bb = ctx.bb;
  TensorInfo info = ctx.Info(0);
  if (info.ndim() == 0) throw std::runtime_error("diff of a 0-d tensor");
  int64_t dim = NormalizeDim(ctx.Int(2), info.ndim()), n = ctx.Int(1);
  if (n < 0) throw std::runtime_error("diff: n must be non-negative");
  // Eager returns the input itself for n = 0, ignoring prepend/append.
  if (n == 0) throw std::runtime_error("diff with n=0 is the input itself (left to PyTorch)");
  std::vector<Expr> parts;
  if (!ctx.IsNone(3)) parts.push_back(ctx.Tensor(3));
  parts.push_back(ctx.Tensor(0));
  if (!ctx.IsNone(4)) parts.push_back(ctx.Tensor(4));
  Expr x = parts.size() == 1 ? parts[0] : bb.Op("concat", bb.Tuple(parts), dim);
  int64_t len = bb.InfoOf(x).shape[dim];
  if (n >= len) throw std::runtime_error("diff: n not smaller than the length");
  bool is_bool = bb.InfoOf(x).dtype == "bool";
  for (int64_t k = 0; k < n; ++k, --len) {
    Expr hi = SliceDim(bb, x, dim, 1, len), lo = SliceDim(bb, x, dim, 0, len - 1);
    if (is_bool) {  // TVM's != on bool fails to lower: compare as int8
      hi = bb.Op("astype", hi, std::string("int8"));
      lo = bb.Op("astype", lo, std::string("int8"));
    }
    x = bb.Op(is_bool ? "not_equal" : "subtract", hi, lo);
  }
  ctx.SetOutput(0, n == 0 ? bb.Op("reshape", x, IntArray(bb.InfoOf(x).shape)) : x);
}

}  // namespace

TORCH_TVM_CONVERTERS(linear_algebra) {
  reg.Register("aten::baddbmm", BAddBMM);
  reg.Register("aten::einsum", Einsum, EinsumCheck);
  reg.Register("aten::diff", Diff);
  reg.Register("aten::linear", Linear);
  reg.Register("aten::addmm", AddMM);
  for (const char* s : {"aten::matmul", "aten::mm", "aten::bmm"}) {
    reg.Register(s, [](ConvertContext& c) { c.SetOutput(0, MatMul(c.bb, c.Tensor(0), c.Tensor(1))); });
  }
  reg.Register("aten::t", [](ConvertContext& c) { c.SetOutput(0, Transpose(c.bb, c.Tensor(0), 0, 1)); });
  // swapaxes / swapdims are transpose under other names (MaxViT's scripted code).
  for (const char* s : {"aten::transpose.int", "aten::swapaxes", "aten::swapdims"}) {
    reg.Register(s, [](ConvertContext& c) {
      c.SetOutput(0, Transpose(c.bb, c.Tensor(0), c.Int(1), c.Int(2)));
    });
  }
  reg.Register("aten::permute", Permute);
}

}  // namespace torch_tvm::convert
