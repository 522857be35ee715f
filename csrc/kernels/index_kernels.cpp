// Index checks and selection kernels for the indexing converters.
//
// TVM's take / gather_elements do not bounds-check: an out-of-range index
// would read past the buffer. Every index tensor computed at run time passes
// through check_index first, which raises (as eager does) instead.
//
// Registered tvm-ffi globals:
//   torch_tvm.kernels.check_index(idx, size, wrap) -> int64 copy of idx with
//     negative indices wrapped (wrap 1, advanced indexing) or rejected
//     (wrap 0, gather / index_select); raises on an index outside the range
//   torch_tvm.kernels.aten_topk_indices(x, k, dim, largest, sorted) -> the
//     indices at::topk returns (so ties and NaN are ordered as eager orders
//     them); the converter gathers the values with them
#include <ATen/ATen.h>
#include <tvm/ffi/reflection/registry.h>

#include "common/dlpack_bridge.h"

namespace torch_tvm::kernels {

namespace ffi = tvm::ffi;

namespace {

ffi::Tensor CheckIndex(const ffi::Tensor& idx, int64_t size, int64_t wrap) {
  c10::InferenceMode guard;
  at::Tensor in = FromTvm(idx).to(at::kLong).contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options());
  const int64_t* src = in.const_data_ptr<int64_t>();
  int64_t* dst = out.mutable_data_ptr<int64_t>();
  const int64_t lo = wrap ? -size : 0;
  for (int64_t i = 0, n = in.numel(); i < n; ++i) {
    int64_t v = src[i];
    TORCH_CHECK_INDEX(v >= lo && v < size, "index ", v, " is out of bounds for dimension with size ",
                      size);
    dst[i] = v < 0 ? v + size : v;
  }
  return ToTvm(out);
}

ffi::Tensor TopkIndices(const ffi::Tensor& x, int64_t k, int64_t dim, int64_t largest,
                        int64_t sorted) {
  c10::InferenceMode guard;
  auto result = at::topk(FromTvm(x), k, dim, largest != 0, sorted != 0);
  return ToTvm(std::get<1>(result).contiguous());
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("torch_tvm.kernels.check_index", CheckIndex)
      .def("torch_tvm.kernels.aten_topk_indices", TopkIndices);
}

}  // namespace torch_tvm::kernels
