// The TVM target for this host: llvm with the CPU's mcpu and the thread budget
// as num-cores (MetaSchedule and the parallel schedules read num-cores).
#pragma once

#include <string>

#include "common/ffi_call.h"

namespace torch_tvm::compile {

// Returns {"kind": "llvm", "mcpu": <host cpu>, "num-cores": num_threads,
//          "vector-width": <host SIMD bits>}.
tvm::ffi::Map<String, Any> HostTarget(int num_threads);

// The widest SIMD register this CPU has, in bits: 512 (AVX-512), 256 (AVX2), 128.
int64_t HostVectorWidth();

// The CPU name LLVM reports for this host ("znver4", "skylake-avx512", ...).
std::string HostCpuName();

}  // namespace torch_tvm::compile
