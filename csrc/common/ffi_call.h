// Typed access to TVM's FFI global functions by name.
//
// The apache-tvm wheel ships no Relax/IR headers, so every Relax construct is
// built by calling a registered global ("relax.op.nn.conv2d", "ir.Var", ...).
// Lookups are cached because the registry lookup takes a global lock in
// tvm-ffi and the converters call the same few dozen names repeatedly.
#pragma once

#include <tvm/ffi/tvm_ffi.h>

#include <string>
#include <utility>

namespace torch_tvm {

using tvm::ffi::Any;
using tvm::ffi::Array;
using tvm::ffi::Function;
using tvm::ffi::ObjectRef;
using tvm::ffi::String;

// Returns the global function `name`, throwing a readable error when the
// running TVM does not provide it (for example when `import tvm` has not run).
const Function& GlobalFunc(const std::string& name);

// Calls the global `name` and returns its result as an ObjectRef.
template <typename... Args>
ObjectRef CallGlobal(const std::string& name, Args&&... args) {
  return GlobalFunc(name)(std::forward<Args>(args)...).template cast<ObjectRef>();
}

// Calls the global `name` and returns its raw result.
template <typename... Args>
Any CallGlobalAny(const std::string& name, Args&&... args) {
  return GlobalFunc(name)(std::forward<Args>(args)...);
}

}  // namespace torch_tvm
