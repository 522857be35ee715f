// Compiles a Relax IRModule for the host CPU and loads it into a Relax VM.
//
// TVM's compile driver (tvm.compile, the pass pipelines, LegalizeOps) exists
// only in Python, so the build itself is a call to the global
// "torch_tvm.build_relax" that torch_tvm/_build.py registers. Everything
// before (conversion) and after (the VM calls) stays in C++: Python runs once
// per compilation, never per inference.
#pragma once

#include <tvm/ffi/container/tensor.h>
#include <tvm/ffi/extra/module.h>

#include <memory>
#include <mutex>
#include <vector>

#include "common/ffi_call.h"
#include "common/options.h"

namespace torch_tvm::compile {

class CompiledFunction {
 public:
  // `weights_owner` keeps the oneDNN weights the build prepacked alive; the
  // executable refers to them only by handle.
  CompiledFunction(tvm::ffi::Module vm, Any weights_owner, double compile_seconds);

  // Runs "main". The Relax VM keeps per-call state, so calls are serialised.
  std::vector<tvm::ffi::Tensor> Run(const std::vector<tvm::ffi::Tensor>& args);
  double compile_seconds() const { return compile_seconds_; }

 private:
  tvm::ffi::Module vm_;
  Any weights_owner_;
  Function main_;
  double compile_seconds_;
  std::mutex run_mu_;
};

std::shared_ptr<CompiledFunction> CompileRelax(const ObjectRef& ir_module, const Options& options);

// The thread count the compiled code will use for `options`.
int EffectiveThreads(const Options& options);

}  // namespace torch_tvm::compile
