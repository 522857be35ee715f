// Zero-copy exchange of tensors between ATen and tvm-ffi through DLPack 1.x.
//
// torch's ATen/dlpack.h and tvm-ffi's dlpack/dlpack.h are the same DLPack 1.3
// header behind the same include guard, so one translation unit can include
// both (checked against torch 2.14.1 and apache-tvm-ffi 0.1.15).
#pragma once

#include <ATen/core/Tensor.h>
#include <tvm/ffi/container/tensor.h>

namespace torch_tvm {

// TVM-generated kernels assume 64-byte aligned buffers without checking.
constexpr size_t kTvmAlignment = 64;

// Wraps `t` as an ffi::Tensor that shares its storage. `t` must be dense,
// contiguous and 64-byte aligned (see NeedsCopyForTvm).
tvm::ffi::Tensor ToTvm(const at::Tensor& t);

// Wraps an ffi::Tensor as an at::Tensor sharing its storage.
at::Tensor FromTvm(const tvm::ffi::Tensor& t);

// True when `t` cannot be handed to TVM as is (non-contiguous or misaligned).
bool NeedsCopyForTvm(const at::Tensor& t);

}  // namespace torch_tvm
