// A thin C++ face over TVM's Relax BlockBuilder, reached through FFI globals.
//
// Converters only ever see this class: they emit `relax.op.*` calls and read
// back the inferred tensor type of what they emitted. Keeping every FFI name in
// one place means a TVM rename breaks one file, not every converter.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

#include "common/ffi_call.h"

namespace torch_tvm::convert {

using Expr = ObjectRef;

// The static type Relax inferred for a tensor expression.
struct TensorInfo {
  std::vector<int64_t> shape;  // -1 for a symbolic dimension
  std::string dtype;           // e.g. "float32"
  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
};

class RelaxBuilder {
 public:
  RelaxBuilder();
  // A function left open (a converter threw) is closed here, so TVM's
  // BlockBuilder is not destroyed with open blocks (it would print
  // "BlockBuilder destroyed with remaining blocks!" on every rejection).
  ~RelaxBuilder();
  RelaxBuilder(const RelaxBuilder&) = delete;
  RelaxBuilder& operator=(const RelaxBuilder&) = delete;

  // A function parameter; call all of them before BeginFunction.
  Expr Param(const std::string& name, const std::vector<int64_t>& shape, const std::string& dtype);
  void BeginFunction(const std::vector<Expr>& params);

  // Emits `value` as a dataflow binding and returns the bound variable, whose
  // type TVM has inferred (so InfoOf works on it).
  Expr Emit(const Expr& value);

  // Calls `relax.op.<op>` with the given arguments and emits the result.
  template <typename... Args>
  Expr Op(const std::string& op, Args&&... args) {
    return Emit(CallGlobal("relax.op." + op, std::forward<Args>(args)...));
  }

  // Closes the function with `outputs` and returns an IRModule whose "main"
  // returns a single tensor or a tuple of tensors.
  ObjectRef Finish(const std::vector<Expr>& outputs);

  // Relax constants. The tensor is shared, not copied: tvm.compile copies
  // constants into the executable.
  Expr Constant(const at::Tensor& value);
  Expr ScalarConstant(double value, const std::string& dtype);
  Expr FloatImm(double value, const std::string& dtype);

  // A call to the tvm-ffi global `name` (an extern kernel registered in
  // csrc/kernels) that allocates and returns one tensor.
  Expr CallExtern(const std::string& name, const std::vector<Expr>& args,
                  const std::vector<int64_t>& out_shape, const std::string& out_dtype);
  // The same for a kernel returning several tensors (an ffi::Array of them):
  // one (shape, dtype) per output, at least two (one type would make the call
  // a tensor, not a tuple). Emits the call and returns the bound tuple
  // variable; read its fields with TupleGetItem. The kernel gets one more
  // argument after `args`: an int64 tensor of the declared types (per output:
  // its at::ScalarType number, ndim, then the dims), which it must check its
  // results against: nothing
  // checks an extern's results at run time, and a wrong shape would make the
  // code after it read past a buffer.
  using OutputType = std::pair<std::vector<int64_t>, std::string>;
  Expr CallExternTuple(const std::string& name, const std::vector<Expr>& args,
                       const std::vector<OutputType>& outs);

  Expr Tuple(const std::vector<Expr>& fields);
  // A tuple of int64 immediates (what strided_slice takes) and a shape.
  Expr IntTuple(const std::vector<int64_t>& values);
  Expr Shape(const std::vector<int64_t>& values);
  Expr TupleGetItem(const Expr& tuple, int64_t index);

  TensorInfo InfoOf(const Expr& expr) const;

 private:
  ObjectRef bb_;
  std::vector<Expr> params_;
  bool block_open_ = false, scope_open_ = false;
};

// Helpers to build FFI arrays from C++ vectors.
Array<int64_t> IntArray(const std::vector<int64_t>& values);

// dtype name of a torch scalar type as Relax spells it ("float32", "int64", ...).
std::string RelaxDType(at::ScalarType type);

}  // namespace torch_tvm::convert
