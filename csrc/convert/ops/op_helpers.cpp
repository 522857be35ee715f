#include "convert/ops/op_helpers.h"

#include <torch/csrc/jit/ir/constants.h>

#include <algorithm>
#include <stdexcept>

namespace torch_tvm::convert {

int64_t NormalizeDim(int64_t dim, int64_t ndim) {
  int64_t wrapped = dim < 0 ? dim + ndim : dim;
  if (wrapped < 0 || wrapped >= std::max<int64_t>(ndim, 1)) {
    throw std::runtime_error("dim " + std::to_string(dim) + " out of range for rank " +
                             std::to_string(ndim));
  }
  return wrapped;
}

Expr CastTo(RelaxBuilder& bb, const Expr& x, const std::string& dtype) {
  if (bb.InfoOf(x).dtype == dtype) return x;
  return bb.Op("astype", x, dtype);
}

static at::ScalarType ScalarTypeOf(const std::string& dtype) {
  if (dtype == "float32") return at::kFloat;
  if (dtype == "float64") return at::kDouble;
  if (dtype == "float16") return at::kHalf;
  if (dtype == "bfloat16") return at::kBFloat16;
  if (dtype == "int64") return at::kLong;
  if (dtype == "int32") return at::kInt;
  if (dtype == "int16") return at::kShort;
  if (dtype == "int8") return at::kChar;
  if (dtype == "uint8") return at::kByte;
  if (dtype == "bool") return at::kBool;
  throw std::runtime_error("unsupported dtype " + dtype);
}

std::string PromotedDType(const ConvertContext& ctx, size_t a, size_t b) {
  bool ta = ctx.IsTensor(a), tb = ctx.IsTensor(b);
  if (ta && tb) {
    auto da = ScalarTypeOf(ctx.Info(a).dtype), db = ScalarTypeOf(ctx.Info(b).dtype);
    // 0-d tensors promote like scalars in torch.
    bool za = ctx.Info(a).ndim() == 0, zb = ctx.Info(b).ndim() == 0;
    if (za != zb) {
      auto dim_t = za ? db : da, zero_t = za ? da : db;
      if (at::isFloatingType(zero_t) && !at::isFloatingType(dim_t)) {
        return RelaxDType(at::typeMetaToScalarType(at::get_default_dtype()));
      }
      return RelaxDType(dim_t);
    }
    return RelaxDType(at::promoteTypes(da, db));
  }
  size_t t = ta ? a : b, s = ta ? b : a;
  if (!ctx.IsTensor(t)) throw std::runtime_error("binary op with two scalars");
  auto dt = ScalarTypeOf(ctx.Info(t).dtype);
  const auto& c = ctx.Constant(s);
  if (c.isDouble() && !at::isFloatingType(dt)) {
    return RelaxDType(at::typeMetaToScalarType(at::get_default_dtype()));
  }
  return RelaxDType(dt);
}

std::pair<Expr, Expr> BinaryOperands(ConvertContext& ctx, size_t a, size_t b) {
  std::string dtype = PromotedDType(ctx, a, b);
  Expr x = ctx.IsTensor(a) ? CastTo(ctx.bb, ctx.Tensor(a), dtype) : ctx.Tensor(a, dtype);
  Expr y = ctx.IsTensor(b) ? CastTo(ctx.bb, ctx.Tensor(b), dtype) : ctx.Tensor(b, dtype);
  return {x, y};
}

Expr Scaled(ConvertContext& ctx, const Expr& x, double scale) {
  if (scale == 1.0) return x;
  return ctx.bb.Op("multiply", x, ctx.bb.ScalarConstant(scale, ctx.bb.InfoOf(x).dtype));
}

void RequireFalse(const ConvertContext& ctx, size_t index, const std::string& what) {
  if (ctx.Bool(index)) throw std::runtime_error(what + " is not supported");
}

SupportCheckFn RejectIfTrue(size_t index, std::string what) {
  return [index, what](const OpSignature& op) -> std::optional<std::string> {
    // A flag known only at run time (a scripted module's self.training) is
    // checked again at conversion, where its value is known.
    auto v = op.ConstantArg(index);
    if (v && v->isBool() && v->toBool()) return what;
    return std::nullopt;
  };
}

Expr PrimInt(int64_t value) { return CallGlobal("ir.IntImm", String("int64"), value, nullptr); }

Expr CheckedIndex(RelaxBuilder& bb, const Expr& index, int64_t size, bool wrap_negative) {
  TensorInfo info = bb.InfoOf(index);
  if (info.dtype != "int64" && info.dtype != "int32") {
    throw std::runtime_error("index tensor of dtype " + info.dtype + " (only int64/int32)");
  }
  return bb.Emit(bb.CallExtern("torch_tvm.kernels.check_index",
                               {index, PrimInt(size), PrimInt(wrap_negative ? 1 : 0)}, info.shape,
                               "int64"));
}

Expr NonZero(RelaxBuilder& bb, const Expr& x) {
  std::string dtype = bb.InfoOf(x).dtype;
  if (dtype == "bool") return x;
  Expr nz = bb.Op("not_equal", x, bb.ScalarConstant(0, dtype));
  if (dtype.rfind("float", 0) == 0 || dtype == "bfloat16") {
    nz = bb.Op("logical_or", nz, bb.Op("isnan", x));
  }
  return nz;
}

std::vector<int64_t> ReduceDims(const ConvertContext& ctx, size_t i, int64_t ndim) {
  std::vector<int64_t> dims;
  if (i < ctx.NumInputs() && !ctx.IsNone(i)) dims = ctx.Ints(i);
  if (dims.empty()) {
    for (int64_t d = 0; d < ndim; ++d) dims.push_back(d);
  }
  for (auto& d : dims) d = NormalizeDim(d, ndim);
  std::sort(dims.begin(), dims.end());
  dims.erase(std::unique(dims.begin(), dims.end()), dims.end());
  return dims;
}

}  // namespace torch_tvm::convert
