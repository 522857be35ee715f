// Small helpers shared by the converter families.
#pragma once

#include <string>
#include <vector>

#include "convert/registry.h"

namespace torch_tvm::convert {

// Wraps a negative dim into [0, ndim).
int64_t NormalizeDim(int64_t dim, int64_t ndim);

// Converts a tensor-or-scalar operand to `dtype` when it is not already.
Expr CastTo(RelaxBuilder& bb, const Expr& x, const std::string& dtype);

// The dtype torch's type promotion gives `a op b` for two converter inputs,
// honouring that a Python scalar does not promote a tensor's category.
std::string PromotedDType(const ConvertContext& ctx, size_t a, size_t b);

// Both operands of a binary op, cast to their promoted dtype.
std::pair<Expr, Expr> BinaryOperands(ConvertContext& ctx, size_t a, size_t b);

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

// x != 0 as a bool tensor, true for NaN (TVM's float != is ordered: NaN != 0
// would be false).
Expr NonZero(RelaxBuilder& bb, const Expr& x);

// Dims (all when empty or None) of argument i, normalised for rank ndim.
std::vector<int64_t> ReduceDims(const ConvertContext& ctx, size_t i, int64_t ndim);
void RequireFalse(const ConvertContext& ctx, size_t index, const std::string& what);

}  // namespace torch_tvm::convert
