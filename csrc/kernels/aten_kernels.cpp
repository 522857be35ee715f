// ATen's own CPU kernels for the norms, softmax and sum/mean, called from TVM-compiled
// graphs where the build measured them faster than TVM's generated kernel for
// that op and shape (torch_tvm/_aten_choice.py). Same numerics as eager
// PyTorch, same OpenMP pool.
//
// Registered tvm-ffi globals:
//   torch_tvm.kernels.aten_softmax(x, dim, log) -> softmax (log 0) / log_softmax (1) over dim
//   torch_tvm.kernels.aten_layer_norm(x, gamma, beta, normalized_ndim, eps)
//   torch_tvm.kernels.aten_group_norm(x, gamma, beta, groups, eps)
//   torch_tvm.kernels.aten_reduce(x, axes_mask, keepdim, mean) -> sum (mean 0) / mean (1)
//     over the axes whose bit is set in axes_mask
// and, for ops with no fast TVM kernel (the converters call them directly):
//   torch_tvm.kernels.aten_convolution(x, w, b, params): at::convolution; b has no
//     elements when there is no bias; params (int64) = [transposed, groups, n,
//     stride[n], padding[n], dilation[n], output_padding[n]]
//   torch_tvm.kernels.aten_max_pool3d(x, params): params = [kernel[3], stride[3],
//     padding[3], dilation[3], ceil_mode]
#include <ATen/ATen.h>
#include <tvm/ffi/reflection/registry.h>

#include "common/dlpack_bridge.h"
#include "kernels/counters.h"

namespace torch_tvm::kernels {

namespace ffi = tvm::ffi;

namespace {

ffi::Tensor Softmax(const ffi::Tensor& x, int64_t dim, int64_t log) {
  GetCounters().aten_softmax++;
  c10::InferenceMode guard;
  at::Tensor t = FromTvm(x);
  return ToTvm(log ? at::log_softmax(t, dim) : at::softmax(t, dim));
}

ffi::Tensor LayerNorm(const ffi::Tensor& x, const ffi::Tensor& gamma, const ffi::Tensor& beta,
                      int64_t normalized_ndim, double eps) {
  GetCounters().aten_layer_norm++;
  c10::InferenceMode guard;
  at::Tensor t = FromTvm(x);
  auto sizes = t.sizes();
  std::vector<int64_t> normalized(sizes.end() - normalized_ndim, sizes.end());
  return ToTvm(at::layer_norm(t, normalized, FromTvm(gamma), FromTvm(beta), eps));
}

ffi::Tensor GroupNorm(const ffi::Tensor& x, const ffi::Tensor& gamma, const ffi::Tensor& beta,
                      int64_t groups, double eps) {
  GetCounters().aten_group_norm++;
  c10::InferenceMode guard;
  return ToTvm(at::group_norm(FromTvm(x), groups, FromTvm(gamma), FromTvm(beta), eps));
}

ffi::Tensor Reduce(const ffi::Tensor& x, int64_t axes_mask, int64_t keepdim, int64_t mean) {
  GetCounters().aten_reduce++;
  c10::InferenceMode guard;
  at::Tensor t = FromTvm(x);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (axes_mask & (int64_t{1} << d)) dims.push_back(d);
  }
  at::Tensor y = mean ? at::mean(t, dims, keepdim != 0) : at::sum(t, dims, keepdim != 0);
  return ToTvm(y.contiguous());
}

std::vector<int64_t> Take(const at::Tensor& params, int64_t& at, int64_t n) {
  const int64_t* p = params.data_ptr<int64_t>();
  std::vector<int64_t> out(p + at, p + at + n);
  at += n;
  return out;
}

ffi::Tensor Convolution(const ffi::Tensor& x, const ffi::Tensor& w, const ffi::Tensor& b,
                        const ffi::Tensor& params) {
  GetCounters().aten_convolution++;
  c10::InferenceMode guard;
  at::Tensor p = FromTvm(params), bias = FromTvm(b);
  int64_t at_ = 3, n = p.data_ptr<int64_t>()[2];
  bool transposed = p.data_ptr<int64_t>()[0] != 0;
  int64_t groups = p.data_ptr<int64_t>()[1];
  auto stride = Take(p, at_, n), padding = Take(p, at_, n), dilation = Take(p, at_, n);
  auto output_padding = Take(p, at_, n);
  std::optional<at::Tensor> opt_bias;
  if (bias.numel() > 0) opt_bias = bias;
  return ToTvm(at::convolution(FromTvm(x), FromTvm(w), opt_bias, stride, padding, dilation,
                               transposed, output_padding, groups)
                   .contiguous());
}

ffi::Tensor MaxPool3d(const ffi::Tensor& x, const ffi::Tensor& params) {
  GetCounters().aten_max_pool3d++;
  c10::InferenceMode guard;
  at::Tensor p = FromTvm(params);
  int64_t at_ = 0;
  auto kernel = Take(p, at_, 3), stride = Take(p, at_, 3), padding = Take(p, at_, 3);
  auto dilation = Take(p, at_, 3);
  bool ceil_mode = p.data_ptr<int64_t>()[at_] != 0;
  return ToTvm(
      at::max_pool3d(FromTvm(x), kernel, stride, padding, dilation, ceil_mode).contiguous());
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("torch_tvm.kernels.aten_softmax", Softmax)
      .def("torch_tvm.kernels.aten_layer_norm", LayerNorm)
      .def("torch_tvm.kernels.aten_group_norm", GroupNorm)
      .def("torch_tvm.kernels.aten_reduce", Reduce)
      .def("torch_tvm.kernels.aten_convolution", Convolution)
      .def("torch_tvm.kernels.aten_max_pool3d", MaxPool3d);
}

}  // namespace torch_tvm::kernels
