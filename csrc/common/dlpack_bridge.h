// Zero-copy exchange of tensors between ATen and tvm-ffi through DLPack 1.x.
//
// torch's ATen/dlpack.h and tvm-ffi's dlpack/dlpack.h are the same DLPack 1.3
// header behind the same include guard, so one translation unit can include
// both (checked against torch 2.14.1 and apache-tvm-ffi 0.1.15).
#pragma once

#include <ATen/core/Tensor.h>
#include <tvm/ffi/container/tensor.h>

#include <vector>

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

// Channels-last I/O. A 4-d tensor that is channels-last but not contiguous
// goes to TVM as its NHWC view (a no-copy permute), and the Relax function
// permutes it back to NCHW; an output that eager produces channels-last comes
// back NHWC and is handed out as the NCHW view. The spec key, the converter
// and the runner all use these, so they agree on what "channels-last" means.
bool IsChannelsLastInput(const at::Tensor& t);
bool IsChannelsLastStrides(c10::IntArrayRef sizes, c10::IntArrayRef strides);
inline const std::vector<int64_t> kToNhwc{0, 2, 3, 1};
inline const std::vector<int64_t> kToNchw{0, 3, 1, 2};

}  // namespace torch_tvm
