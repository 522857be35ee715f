// Tensor creation with sizes known at compile time: zeros, ones, full, empty
// (and their _like / new_ forms), arange, fill (what fill_ becomes after
// functionalisation; zero_ becomes zeros_like). empty is zeros: its contents
// are unspecified. A dtype argument is honoured; a device other than the CPU,
// a non-strided layout or pinned memory stays in PyTorch (TensorOptionsCheck).
#include <ATen/ATen.h>

#include <stdexcept>

#include "convert/ops/op_helpers.h"

namespace torch_tvm::convert {
namespace {

enum class Fill { kZeros, kOnes, kValue };

// dtype full() infers from its fill value when none is given.
std::string FillValueDType(const ConvertContext& ctx, size_t i) {
  const auto& v = ctx.Constant(i);
  if (v.isDouble()) return DefaultFloatDType();
  if (v.isBool()) return "bool";
  if (v.isInt()) return "int64";
  throw std::runtime_error("fill value must be a number");
}

Expr Filled(ConvertContext& ctx, const std::vector<int64_t>& shape, Fill fill,
            const std::string& dtype, size_t value_index) {
  for (int64_t d : shape) {
    if (d < 0) throw std::runtime_error("negative dimension " + std::to_string(d));
  }
  switch (fill) {
    case Fill::kZeros: return ctx.bb.Op("zeros", ctx.bb.Shape(shape), dtype);
    case Fill::kOnes: return ctx.bb.Op("ones", ctx.bb.Shape(shape), dtype);
    case Fill::kValue: break;
  }
  return ctx.bb.Op("full", ctx.bb.Shape(shape), ScalarOf(ctx, value_index, dtype), dtype);
}

// zeros / ones / full / empty(size, [fill,] dtype, layout, device, pin_memory).
void RegisterSized(ConverterRegistry& reg, const std::string& key, Fill fill) {
  int dtype = fill == Fill::kValue ? 2 : 1;
  reg.Register(
      key,
      [fill, dtype](ConvertContext& c) {
        std::string fallback = fill == Fill::kValue && c.IsNone(dtype) ? FillValueDType(c, 1)
                                                                       : DefaultFloatDType();
        c.SetOutput(0, Filled(c, c.Ints(0), fill, DTypeArg(c, dtype, fallback), 1));
      },
      TensorOptionsCheck({dtype, dtype + 1, dtype + 2, dtype + 3,
                          key == "aten::empty.memory_format" ? dtype + 4 : -1}));
}

// *_like(self, [fill,] dtype, layout, device, pin_memory, memory_format):
// self's shape and dtype.
void RegisterLike(ConverterRegistry& reg, const std::string& key, Fill fill) {
  int dtype = fill == Fill::kValue ? 2 : 1;
  reg.Register(
      key,
      [fill, dtype](ConvertContext& c) {
        TensorInfo info = c.Info(0);
        c.SetOutput(0, Filled(c, info.shape, fill, DTypeArg(c, dtype, info.dtype), 1));
      },
      TensorOptionsCheck({dtype, dtype + 1, dtype + 2, dtype + 3, dtype + 4}));
}

// new_*(self, size, [fill,] dtype, layout, device, pin_memory): self's dtype.
void RegisterNew(ConverterRegistry& reg, const std::string& key, Fill fill) {
  int dtype = fill == Fill::kValue ? 3 : 2;
  reg.Register(
      key,
      [fill, dtype](ConvertContext& c) {
        c.SetOutput(0, Filled(c, c.Ints(1), fill, DTypeArg(c, dtype, c.Info(0).dtype), 2));
      },
      TensorOptionsCheck({dtype, dtype + 1, dtype + 2, dtype + 3, -1}));
}

// arange([start,] end, [step,] dtype, ...): ATen computes the values (its
// length rule, in double, and its dtype inference: integral when every bound
// is, else the default float), baked in as a constant.
void RegisterArange(ConverterRegistry& reg, const std::string& key, int bounds) {
  reg.Register(
      key,
      [bounds](ConvertContext& c) {
        at::TensorOptions options;
        if (!c.IsNone(bounds)) {
          options = options.dtype(static_cast<at::ScalarType>(c.Int(bounds)));
        }
        at::Scalar start = 0, end, step = 1;
        if (bounds == 1) {
          end = c.Constant(0).toScalar();
        } else {
          start = c.Constant(0).toScalar();
          end = c.Constant(1).toScalar();
          if (bounds == 3) step = c.Constant(2).toScalar();
        }
        at::Tensor values;
        {
          c10::InferenceMode guard;
          values = at::arange(start, end, step, options);
        }
        RelaxDType(values.scalar_type());  // throws for a dtype TVM lacks
        c.SetOutput(0, c.bb.Constant(values));
      },
      TensorOptionsCheck({bounds, bounds + 1, bounds + 2, bounds + 3, -1}));
}

}  // namespace

TORCH_TVM_CONVERTERS(creation) {
  RegisterSized(reg, "aten::zeros", Fill::kZeros);
  RegisterSized(reg, "aten::ones", Fill::kOnes);
  RegisterSized(reg, "aten::full", Fill::kValue);
  RegisterSized(reg, "aten::empty.memory_format", Fill::kZeros);
  RegisterLike(reg, "aten::zeros_like", Fill::kZeros);
  RegisterLike(reg, "aten::ones_like", Fill::kOnes);
  RegisterLike(reg, "aten::full_like", Fill::kValue);
  RegisterLike(reg, "aten::empty_like", Fill::kZeros);
  RegisterNew(reg, "aten::new_zeros", Fill::kZeros);
  RegisterNew(reg, "aten::new_ones", Fill::kOnes);
  RegisterNew(reg, "aten::new_full", Fill::kValue);
  RegisterNew(reg, "aten::new_empty", Fill::kZeros);
  RegisterArange(reg, "aten::arange", 1);
  RegisterArange(reg, "aten::arange.start", 2);
  RegisterArange(reg, "aten::arange.start_step", 3);
  // fill(self, value): what fill_ becomes after functionalisation.
  reg.Register("aten::fill.Scalar", [](ConvertContext& c) {
    TensorInfo info = c.Info(0);
    c.SetOutput(0, Filled(c, info.shape, Fill::kValue, info.dtype, 1));
  });
  // zero(self): what zero_ becomes (lowering/scatter_view_mutations).
  reg.Register("aten::zero", [](ConvertContext& c) {
    TensorInfo info = c.Info(0);
    c.SetOutput(0, c.bb.Op("zeros", c.bb.Shape(info.shape), info.dtype));
  });
  reg.Register("aten::fill.Tensor", [](ConvertContext& c) {
    TensorInfo info = c.Info(0);
    if (c.Info(1).ndim() != 0) {
      throw std::runtime_error("fill only supports a 0-dimensional value tensor");
    }
    Expr value = CastTo(c.bb, c.Tensor(1), info.dtype);
    c.SetOutput(0, c.bb.Op("broadcast_to", value, c.bb.Shape(info.shape)));
  });
}

}  // namespace torch_tvm::convert
