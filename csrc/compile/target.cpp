#include "compile/target.h"

namespace torch_tvm::compile {

std::string HostCpuName() {
  static const std::string name =
      CallGlobalAny("target.llvm_get_system_cpu").cast<String>().operator std::string();
  return name;
}

tvm::ffi::Map<String, Any> HostTarget(int num_threads) {
  tvm::ffi::Map<String, Any> target;
  target.Set("kind", String("llvm"));
  target.Set("mcpu", String(HostCpuName()));
  target.Set("num-cores", static_cast<int64_t>(num_threads));
  return target;
}

}  // namespace torch_tvm::compile
