#include "compile/target.h"

namespace torch_tvm::compile {

std::string HostCpuName() {
  static const std::string name =
      CallGlobalAny("target.llvm_get_system_cpu").cast<String>().operator std::string();
  return name;
}

int64_t HostVectorWidth() {
#if defined(__x86_64__) || defined(__i386__)
  if (__builtin_cpu_supports("avx512f")) return 512;
  if (__builtin_cpu_supports("avx2")) return 256;
#endif
  return 128;
}

tvm::ffi::Map<String, Any> HostTarget(int num_threads) {
  tvm::ffi::Map<String, Any> target;
  target.Set("kind", String("llvm"));
  target.Set("mcpu", String(HostCpuName()));
  target.Set("num-cores", static_cast<int64_t>(num_threads));
  // TVM reports 512 bits for every x86-64 CPU unless told: 16-lane loops on
  // an AVX2 machine run as two halves, or fully scalar when a split leaves a
  // remainder. The schedules read this through llvm_get_vector_width.
  target.Set("vector-width", HostVectorWidth());
  return target;
}

}  // namespace torch_tvm::compile
