// Small helpers shared by the converter families.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "convert/registry.h"

namespace torch_tvm::convert {

// Wraps a negative dim into [0, ndim).
int64_t NormalizeDim(int64_t dim, int64_t ndim);

// x[start:end] along `dim` (unit step, bounds already in range).
Expr SliceDim(RelaxBuilder& bb, const Expr& x, int64_t dim, int64_t start, int64_t end);

// Converts a tensor-or-scalar operand to `dtype` when it is not already.
Expr CastTo(RelaxBuilder& bb, const Expr& x, const std::string& dtype);

// The dtype torch's type promotion gives `a op b` for two converter inputs,
// honouring that a Python scalar does not promote a tensor's category.
std::string PromotedDType(const ConvertContext& ctx, size_t a, size_t b);

// Both operands of a binary op, cast to their promoted dtype.
std::pair<Expr, Expr> BinaryOperands(ConvertContext& ctx, size_t a, size_t b);

// x @ w.T (+ bias): aten::linear, and the projections of the attention fast
// paths. A 1-d w is used as it is, as F.linear does.
Expr Dense(RelaxBuilder& bb, const Expr& x, const Expr& w, const std::optional<Expr>& bias);

// `x * scale` unless scale == 1 (aten's alpha arguments).
Expr Scaled(ConvertContext& ctx, const Expr& x, double scale);

// A support check rejecting the node while its boolean argument `index` is a
// constant true (dropout or batch_norm in training mode). Converters still
// call RequireFalse on the value, which may only be known at compile time.
SupportCheckFn RejectIfTrue(size_t index, std::string what);

// An int64 immediate, for the integer arguments of an extern kernel.
Expr PrimInt(int64_t value);

// `index` (a run-time index tensor) checked against [0, size) (or
// [-size, size) with wrap_negative, negative ones wrapped) by an extern
// kernel that raises on a bad index: TVM's take and gather read past the
// buffer instead. Returns the int64 indices.
Expr CheckedIndex(RelaxBuilder& bb, const Expr& index, int64_t size, bool wrap_negative);

// Dims (all when empty or None) of argument i, normalised for rank ndim.
std::vector<int64_t> ReduceDims(const ConvertContext& ctx, size_t i, int64_t ndim);
void RequireFalse(const ConvertContext& ctx, size_t index, const std::string& what);

// dtype names: "float32"... -> at::ScalarType, and categories.
at::ScalarType ScalarTypeOf(const std::string& dtype);
bool IsFloatDType(const std::string& dtype);
std::string DefaultFloatDType();

// The dtype torch's result_type gives for the converter inputs `indices`
// (tensors, 0-d tensors and Python scalars, as TensorIterator promotes them).
std::string ResultDType(const ConvertContext& ctx, const std::vector<size_t>& indices);

// True / false when the dtype category (integral incl. bool, or floating) of
// an argument is known from the graph's types; nullopt when it is not.
std::optional<bool> IsIntegralArg(const ArgInfo& arg);
// The profiled scalar type of a tensor argument, when known.
std::optional<at::ScalarType> TensorArgDType(const ArgInfo& arg);

// A compile-time scalar input as an exact 0-d constant of `dtype` (ints are
// not rounded through double; a float converts to an int dtype as c10 casts).
Expr ScalarOf(ConvertContext& ctx, size_t i, const std::string& dtype);

// torch's bool(x): x != 0, with NaN true (TVM's float->bool cast and its
// float `!=` are ordered comparisons, false on NaN).
Expr ToBool(RelaxBuilder& bb, const Expr& x);

// maximum/minimum of two tensors keeping a NaN from either side, as ATen.
Expr NanKeepingMinMax(RelaxBuilder& bb, const Expr& a, const Expr& b, bool is_max);

// Positions of the TensorOptions-like arguments of a creation or conversion op
// (-1 when the schema has none).
struct OptionArgs {
  int dtype = -1, layout = -1, device = -1, pin_memory = -1, memory_format = -1;
};
// Rejects a non-strided layout, a device other than the CPU, pinned memory and
// a memory_format other than contiguous/preserve, and dtypes TVM lacks.
SupportCheckFn TensorOptionsCheck(OptionArgs args);
// The dtype argument `index` (an at::ScalarType number), or `fallback` when None.
std::string DTypeArg(const ConvertContext& ctx, int index, const std::string& fallback);

}  // namespace torch_tvm::convert
