#include "common/dlpack_bridge.h"

#include <ATen/DLConvertor.h>

#include <algorithm>
#include <cstdint>

namespace torch_tvm {

bool NeedsCopyForTvm(const at::Tensor& t) {
  if (!t.is_contiguous()) return true;
  auto addr = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  return t.numel() > 0 && addr % kTvmAlignment != 0;
}

bool IsChannelsLastStrides(c10::IntArrayRef sizes, c10::IntArrayRef strides) {
  if (sizes.size() != 4 || strides.size() != 4) return false;
  // Channels-last and not plain contiguous (size-1 dims make both true).
  auto channels_last = c10::get_channels_last_strides_2d(sizes);
  int64_t contiguous[4];
  contiguous[3] = 1;
  for (int i = 2; i >= 0; --i) contiguous[i] = contiguous[i + 1] * std::max<int64_t>(sizes[i + 1], 1);
  auto same = [&](const auto& expected) {
    for (size_t i = 0; i < 4; ++i) {
      if (sizes[i] != 1 && strides[i] != expected[i]) return false;
    }
    return true;
  };
  return same(channels_last) && !same(contiguous);
}

bool IsChannelsLastInput(const at::Tensor& t) {
  return t.dim() == 4 && IsChannelsLastStrides(t.sizes(), t.strides());
}

tvm::ffi::Tensor ToTvm(const at::Tensor& t) {
  DLManagedTensorVersioned* managed = at::toDLPackVersioned(t);
  // PyTorch gives an empty tensor strides that are not the compact ones TVM
  // checks for ((1, 1) for a 3x0 tensor, where compact is (0, 1)); no
  // element is ever read, so declare it compact (NULL strides).
  if (t.numel() == 0) managed->dl_tensor.strides = nullptr;
  // Checks (not copies): a misaligned pointer would be undefined behaviour in
  // the generated code, so refuse it here rather than compute garbage.
  return tvm::ffi::Tensor::FromDLPackVersioned(managed, t.numel() > 0 ? kTvmAlignment : 0,
                                               /*require_contiguous=*/true);
}

at::Tensor FromTvm(const tvm::ffi::Tensor& t) {
  return at::fromDLPackVersioned(t.ToDLPackVersioned());
}

}  // namespace torch_tvm
