#include "convert/ops/op_helpers.h"

#include <ATen/ATen.h>
#include <ATen/native/TypeProperties.h>
#include <c10/core/DefaultDtype.h>
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

Expr SliceDim(RelaxBuilder& bb, const Expr& x, int64_t dim, int64_t start, int64_t end) {
  return bb.Op("strided_slice", x, bb.IntTuple({dim}), bb.IntTuple({start}), bb.IntTuple({end}),
               bb.IntTuple({1}), true);
}

Expr CastTo(RelaxBuilder& bb, const Expr& x, const std::string& dtype) {
  if (bb.InfoOf(x).dtype == dtype) return x;
  return bb.Op("astype", x, dtype);
}

at::ScalarType ScalarTypeOf(const std::string& dtype) {
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

bool IsFloatDType(const std::string& dtype) {
  return dtype.rfind("float", 0) == 0 || dtype == "bfloat16";
}

std::string DefaultFloatDType() {
  return RelaxDType(at::typeMetaToScalarType(at::get_default_dtype()));
}

std::string ResultDType(const ConvertContext& ctx, const std::vector<size_t>& indices) {
  at::native::ResultTypeState state;
  for (size_t i : indices) {
    const auto& in = ctx.Input(i);
    // A constant keeps what eager sees: a traced Python scalar is a wrapped
    // 0-d tensor (it promotes like a scalar), a folded value is a tensor.
    std::optional<c10::IValue> c = ctx.op.ConstantArg(i);
    if (!c && in.kind == LoweredValue::Kind::kConstant) c = in.constant;
    if (c && c->isTensor()) {
      state = at::native::update_result_type_state(c->toTensor(), state);
    } else if (c && (c->isDouble() || c->isInt() || c->isBool())) {
      state = at::native::update_result_type_state(c->toScalar(), state);
    } else if (in.kind == LoweredValue::Kind::kTensor) {
      TensorInfo info = ctx.bb.InfoOf(in.tensor);
      auto probe = at::empty(std::vector<int64_t>(info.shape.size(), 1),
                             at::TensorOptions().dtype(ScalarTypeOf(info.dtype)));
      state = at::native::update_result_type_state(probe, state);
    } else {
      throw std::runtime_error(ctx.op.key + ": input " + std::to_string(i) +
                               " is neither a tensor nor a scalar");
    }
  }
  return RelaxDType(at::native::result_type(state));
}

std::string PromotedDType(const ConvertContext& ctx, size_t a, size_t b) {
  if (!ctx.IsTensor(a) && !ctx.IsTensor(b)) {
    const auto& ca = ctx.Input(a), &cb = ctx.Input(b);
    bool ta = ca.kind == LoweredValue::Kind::kConstant && ca.constant.isTensor();
    bool tb = cb.kind == LoweredValue::Kind::kConstant && cb.constant.isTensor();
    if (!ta && !tb) throw std::runtime_error("binary op with two scalars");
  }
  return ResultDType(ctx, {a, b});
}

std::optional<at::ScalarType> TensorArgDType(const ArgInfo& arg) {
  if (auto t = arg.type->cast<c10::TensorType>()) return t->scalarType();
  return std::nullopt;
}

std::optional<bool> IsIntegralArg(const ArgInfo& arg) {
  const auto& type = arg.type;
  if (type->cast<c10::TensorType>()) {
    if (auto st = TensorArgDType(arg)) return at::isIntegralType(*st, /*includeBool=*/true);
    return std::nullopt;
  }
  if (type->isSubtypeOf(*c10::IntType::get()) || type->isSubtypeOf(*c10::BoolType::get())) {
    return true;
  }
  if (type->isSubtypeOf(*c10::FloatType::get())) return false;
  return std::nullopt;
}

Expr ScalarOf(ConvertContext& ctx, size_t i, const std::string& dtype) {
  const auto& c = ctx.Constant(i);
  at::Tensor t = at::scalar_tensor(c.toScalar(), at::TensorOptions().dtype(ScalarTypeOf(dtype)));
  return ctx.bb.Constant(t);
}

Expr ToBool(RelaxBuilder& bb, const Expr& x) {
  std::string dtype = bb.InfoOf(x).dtype;
  if (dtype == "bool") return x;
  Expr zero = bb.ScalarConstant(0.0, dtype);
  Expr nonzero = bb.Op("not_equal", x, zero);
  if (IsFloatDType(dtype)) return bb.Op("logical_or", nonzero, bb.Op("isnan", x));
  return nonzero;
}

Expr NanKeepingMinMax(RelaxBuilder& bb, const Expr& a, const Expr& b, bool is_max) {
  TensorInfo ia = bb.InfoOf(a), ib = bb.InfoOf(b);
  if (ia.dtype == "bool") return bb.Op(is_max ? "logical_or" : "logical_and", a, b);
  // Float tensors of rank >= 1 on both sides: the legalisation rule of
  // torch_tvm/_nan.py keeps NaN. It leaves 0-d operands to TVM's
  // `a > b ? a : b`, so those are written out here.
  if (!IsFloatDType(ia.dtype) || (ia.ndim() > 0 && ib.ndim() > 0)) {
    return bb.Op(is_max ? "maximum" : "minimum", a, b);
  }
  Expr wins = bb.Op(is_max ? "greater" : "less", a, b);
  return bb.Op("where", bb.Op("logical_or", wins, bb.Op("isnan", a)), a, b);
}

std::pair<Expr, Expr> BinaryOperands(ConvertContext& ctx, size_t a, size_t b) {
  std::string dtype = PromotedDType(ctx, a, b);
  Expr x = ctx.IsTensor(a) ? CastTo(ctx.bb, ctx.Tensor(a), dtype) : ctx.Tensor(a, dtype);
  Expr y = ctx.IsTensor(b) ? CastTo(ctx.bb, ctx.Tensor(b), dtype) : ctx.Tensor(b, dtype);
  return {x, y};
}

Expr Dense(RelaxBuilder& bb, const Expr& x, const Expr& w, const std::optional<Expr>& bias) {
  Expr wt = bb.InfoOf(w).ndim() < 2 ? w : bb.Op("permute_dims", w, IntArray({1, 0}));
  Expr y = bb.Op("matmul", x, wt, nullptr);
  return bias ? bb.Op("add", y, *bias) : y;
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

static std::optional<std::string> CheckDType(const OpSignature& op, int index) {
  auto v = op.ConstantArg(index);
  if (!v || v->isNone()) return std::nullopt;  // a run-time dtype is checked at conversion
  if (!v->isInt()) return std::nullopt;
  auto type = static_cast<at::ScalarType>(v->toInt());
  switch (type) {
    case at::kFloat: case at::kDouble: case at::kHalf: case at::kBFloat16: case at::kLong:
    case at::kInt: case at::kShort: case at::kChar: case at::kByte: case at::kBool:
      return std::nullopt;
    default:
      return op.key + " to dtype " + std::string(c10::toString(type)) + " is not supported";
  }
}

SupportCheckFn TensorOptionsCheck(OptionArgs args) {
  return [args](const OpSignature& op) -> std::optional<std::string> {
    auto constant = [&](int index) { return op.ConstantArg(static_cast<size_t>(index)); };
    if (args.layout >= 0) {
      auto v = constant(args.layout);
      if (!v || !(v->isNone() || (v->isInt() && v->toInt() == static_cast<int64_t>(at::kStrided)))) {
        return op.key + " with a non-strided (or unknown) layout is not supported";
      }
    }
    if (args.device >= 0) {
      auto v = constant(args.device);
      bool cpu = v && (v->isNone() || (v->isDevice() && v->toDevice().is_cpu()) ||
                       (v->isString() && v->toStringRef() == "cpu"));
      if (!cpu) return op.key + " to a device other than the CPU stays in PyTorch";
    }
    if (args.pin_memory >= 0) {
      auto v = constant(args.pin_memory);
      if (!v || !(v->isNone() || (v->isBool() && !v->toBool()))) {
        return op.key + " with pin_memory stays in PyTorch";
      }
    }
    if (args.memory_format >= 0) {
      auto v = constant(args.memory_format);
      bool ok = v && (v->isNone() ||
                      (v->isInt() && (v->toInt() == static_cast<int64_t>(at::MemoryFormat::Contiguous) ||
                                      v->toInt() == static_cast<int64_t>(at::MemoryFormat::Preserve))));
      if (!ok) return op.key + ": only memory_format contiguous or preserve is supported";
    }
    if (args.dtype >= 0) return CheckDType(op, args.dtype);
    return std::nullopt;
  };
}

std::string DTypeArg(const ConvertContext& ctx, int index, const std::string& fallback) {
  if (index < 0 || ctx.IsNone(static_cast<size_t>(index))) return fallback;
  return RelaxDType(static_cast<at::ScalarType>(ctx.Int(static_cast<size_t>(index))));
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
