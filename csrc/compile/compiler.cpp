#include "compile/compiler.h"

#include <ATen/Parallel.h>

#include <chrono>

#include "compile/target.h"

namespace torch_tvm::compile {

CompiledFunction::CompiledFunction(tvm::ffi::Module vm, Any weights_owner,
                                   double compile_seconds)
    : vm_(std::move(vm)), weights_owner_(std::move(weights_owner)),
      compile_seconds_(compile_seconds) {
  auto main = vm_->GetFunction("main");
  if (!main.has_value()) throw std::runtime_error("compiled module has no main function");
  main_ = *main;
}

std::vector<tvm::ffi::Tensor> CompiledFunction::Run(const std::vector<tvm::ffi::Tensor>& args) {
  std::vector<tvm::ffi::AnyView> packed(args.begin(), args.end());
  Any result;
  {
    std::lock_guard<std::mutex> lock(run_mu_);
    main_.CallPacked(packed.data(), static_cast<int32_t>(packed.size()), &result);
  }
  std::vector<tvm::ffi::Tensor> outputs;
  if (auto single = result.try_cast<tvm::ffi::Tensor>()) {
    outputs.push_back(*single);
  } else {
    for (const Any& item : result.cast<Array<Any>>()) outputs.push_back(item.cast<tvm::ffi::Tensor>());
  }
  return outputs;
}

int EffectiveThreads(const Options& options) {
  return options.num_threads > 0 ? options.num_threads : at::get_num_threads();
}

std::shared_ptr<CompiledFunction> CompileRelax(const ObjectRef& ir_module, const Options& options) {
  auto start = std::chrono::steady_clock::now();
  Any target;
  if (options.target.empty()) {
    target = HostTarget(EffectiveThreads(options));
  } else {
    target = String(options.target);
  }
  auto built = CallGlobalAny("torch_tvm.build_relax", ir_module, target, options.opt_level)
                   .cast<Array<Any>>();
  if (built.size() != 2) throw std::runtime_error("torch_tvm.build_relax returned a bad result");
  auto executable = built[0].cast<tvm::ffi::Module>();
  auto load = executable->GetFunction("vm_load_executable");
  if (!load.has_value()) throw std::runtime_error("build did not return a Relax VM executable");
  auto vm = (*load)().cast<tvm::ffi::Module>();
  constexpr int kDLCPU = 1, kPooledAllocator = 2;
  (*vm->GetFunction("vm_initialization"))(kDLCPU, 0, kPooledAllocator);
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return std::make_shared<CompiledFunction>(vm, built[1], seconds);
}

}  // namespace torch_tvm::compile
