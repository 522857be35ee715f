#include "common/dlpack_bridge.h"

#include <ATen/DLConvertor.h>

#include <cstdint>

namespace torch_tvm {

bool NeedsCopyForTvm(const at::Tensor& t) {
  if (!t.is_contiguous()) return true;
  auto addr = reinterpret_cast<std::uintptr_t>(t.data_ptr());
  return t.numel() > 0 && addr % kTvmAlignment != 0;
}

tvm::ffi::Tensor ToTvm(const at::Tensor& t) {
  DLManagedTensorVersioned* managed = at::toDLPackVersioned(t);
  // Checks (not copies): a misaligned pointer would be undefined behaviour in
  // the generated code, so refuse it here rather than compute garbage.
  return tvm::ffi::Tensor::FromDLPackVersioned(managed, t.numel() > 0 ? kTvmAlignment : 0,
                                               /*require_contiguous=*/true);
}

at::Tensor FromTvm(const tvm::ffi::Tensor& t) {
  return at::fromDLPackVersioned(t.ToDLPackVersioned());
}

}  // namespace torch_tvm
