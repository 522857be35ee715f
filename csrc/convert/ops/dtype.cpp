// dtype conversions: to (dtype, dtype_layout, device, prim_Device, prim_dtype,
// other), type_as, _to_copy, copy, clone; and prim::dtype, evaluated at compile time.
//
// Float -> integer casts follow what eager gives on x86 (cvttss2si and
// friends): truncation toward zero, and INT_MIN of the 32- or 64-bit
// conversion for NaN, +-inf and values out of range; int8/int16/uint8 take the
// low bits of the 32-bit conversion. LLVM's fptosi is poison there, so the
// out-of-range lanes are replaced before the cast and patched after it.
#include <cmath>
#include <stdexcept>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

Expr FloatToInt(RelaxBuilder& bb, const Expr& x, const std::string& target) {
  std::string src = bb.InfoOf(x).dtype;
  if (src != "float32" && src != "float64") {
    throw std::runtime_error("cast from " + src + " to " + target + " is not supported");
  }
  int bits = target == "int64" ? 64 : 32;
  std::string base = bits == 64 ? "int64" : "int32";
  double lo = -std::ldexp(1.0, bits - 1), hi = std::ldexp(1.0, bits - 1);
  Expr in_range = bb.Op("logical_and", bb.Op("greater_equal", x, bb.ScalarConstant(lo, src)),
                        bb.Op("less", x, bb.ScalarConstant(hi, src)));
  Expr safe = bb.Op("where", in_range, x, bb.ScalarConstant(0.0, src));
  Expr cast = bb.Op("where", in_range, bb.Op("astype", safe, base), bb.ScalarConstant(lo, base));
  return CastTo(bb, cast, target);
}

// x in `target` as eager's copy kernel converts it; a fresh tensor when
// `copy` (eager's to() returns self itself when the dtype already matches).
Expr Convert(RelaxBuilder& bb, const Expr& x, const std::string& target, bool copy) {
  std::string src = bb.InfoOf(x).dtype;
  if (src == target) {
    if (!copy) return x;
    if (src == "bool") return bb.Op("logical_and", x, x);
    return bb.Op("multiply", x, bb.ScalarConstant(1.0, src));
  }
  if (target == "bool") return ToBool(bb, x);
  if (IsFloatDType(src) && !IsFloatDType(target)) return FloatToInt(bb, x, target);
  return bb.Op("astype", x, target);
}

// A float16/bfloat16 tensor cast to an integer dtype is left to PyTorch.
SupportCheckFn CastCheck(OptionArgs options, int other) {
  auto base = TensorOptionsCheck(options);
  return [base, options, other](const OpSignature& op) -> std::optional<std::string> {
    if (auto why = base(op)) return why;
    auto src = TensorArgDType(op.Arg(0));
    std::optional<at::ScalarType> dst;
    if (other >= 0) {
      dst = TensorArgDType(op.Arg(other));
    } else if (options.dtype >= 0) {
      auto v = op.ConstantArg(options.dtype);
      if (v && v->isInt()) dst = static_cast<at::ScalarType>(v->toInt());
    }
    if (src && dst && (*src == at::kHalf || *src == at::kBFloat16) &&
        at::isIntegralType(*dst, /*includeBool=*/false)) {
      return op.key + ": a " + std::string(c10::toString(*src)) + " to " +
             std::string(c10::toString(*dst)) + " cast is not supported";
    }
    return std::nullopt;
  };
}

void RegisterTo(ConverterRegistry& reg, const std::string& key, OptionArgs options, int copy_arg,
                int other = -1, bool always_copy = false) {
  reg.Register(
      key,
      [options, copy_arg, other, always_copy](ConvertContext& c) {
        Expr x = c.Tensor(0);
        std::string dtype = other >= 0 ? c.Info(other).dtype
                                       : DTypeArg(c, options.dtype, c.bb.InfoOf(x).dtype);
        bool copy = always_copy || (copy_arg >= 0 && c.Bool(copy_arg));
        c.SetOutput(0, Convert(c.bb, x, dtype, copy));
      },
      CastCheck(options, other));
}

}  // namespace

TORCH_TVM_CONVERTERS(dtype) {
  // copy(self, src, non_blocking): what copy_ into a slice of a fresh buffer
  // becomes (lowering/scatter_view_mutations): src converted as eager's copy
  // kernel converts it, broadcast to self's shape.
  reg.Register("aten::copy", [](ConvertContext& c) {
    TensorInfo info = c.Info(0);
    Expr src = Convert(c.bb, c.Tensor(1), info.dtype, false);
    c.SetOutput(0, c.bb.Op("broadcast_to", src, c.bb.Shape(info.shape)));
  });
  // clone(self, memory_format?): a fresh tensor of the same values (an output
  // of a group never aliases its input). TVM's outputs are contiguous; eager's
  // follow memory_format. The values are the same.
  reg.Register("aten::clone", [](ConvertContext& c) {
    c.SetOutput(0, Convert(c.bb, c.Tensor(0), c.Info(0).dtype, true));
  });
  // to.dtype(self, dtype, non_blocking, copy, memory_format)
  RegisterTo(reg, "aten::to.dtype", {1, -1, -1, -1, 4}, 3);
  // to.dtype_layout(self, dtype?, layout?, device?, pin_memory?, non_blocking, copy, memory_format?)
  RegisterTo(reg, "aten::to.dtype_layout", {1, 2, 3, 4, 7}, 6);
  // to.device(self, device, dtype, non_blocking, copy, memory_format)
  RegisterTo(reg, "aten::to.device", {2, -1, 1, -1, 5}, 4);
  // to.prim_Device(self, device?, dtype?, non_blocking, copy)
  RegisterTo(reg, "aten::to.prim_Device", {2, -1, 1, -1, -1}, 4);
  // to.prim_dtype(self, dtype?, non_blocking, copy)
  RegisterTo(reg, "aten::to.prim_dtype", {1, -1, -1, -1, -1}, 3);
  // to.other(self, other, non_blocking, copy, memory_format)
  RegisterTo(reg, "aten::to.other", {-1, -1, -1, -1, 4}, 3, /*other=*/1);
  RegisterTo(reg, "aten::type_as", {}, -1, /*other=*/1);
  // _to_copy(self, dtype?, layout?, device?, pin_memory?, non_blocking, memory_format?)
  RegisterTo(reg, "aten::_to_copy", {1, 2, 3, 4, 6}, -1, -1, /*always_copy=*/true);
  reg.RegisterCompileTime("prim::dtype", [](ConvertContext& c) {
    c.SetOutputConstant(0, static_cast<int64_t>(ScalarTypeOf(c.Info(0).dtype)));
  });
}

}  // namespace torch_tvm::convert
