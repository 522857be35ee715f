// A linear layer (y = x W^T + b, then an eltwise post-op) through a oneDNN
// inner-product primitive built once, at prepack time, for a fixed number of
// rows.
//
// PyTorch's mkldnn::_linear_pointwise goes through ideep on every call: about
// 45 us of descriptor and attribute glue per call on a Zen 3, before any
// arithmetic, with the other OpenMP thread spinning meanwhile. For the small
// GEMMs of a classifier head or a tiny transformer that glue is 10-60% of the
// call (benchmarks/linear_choice.py). This path wraps three pointers and runs.
//
// Same rules as direct_conv.h: the system oneDNN, no oneDNN or torch header here.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torch_tvm::kernels::dnnl_direct {

struct LinearParams {
  int64_t rows = 0;     // M: the product of the input's leading dimensions
  int64_t in = 0;       // K
  int64_t out = 0;      // N
  bool has_bias = false;
  // As ConvParams: "none", "relu", "sigmoid", "tanh", "swish", "gelu"
  // (algorithm "none" or "tanh") or "hardtanh" (scalars: lo, hi).
  std::string unary = "none";
  std::vector<double> scalars;
  std::string algorithm;
  // As ConvParams::nan_guard; taken when 2 * in <= out (scanning the input
  // then costs clearly less than a pass over the output).
  bool nan_guard = false;
};

class Linear {
 public:
  // weights: contiguous [out, in] floats (torch's layout); bias: `out` floats
  // or nullptr. Both are copied. Runs the primitive once; throws
  // std::runtime_error on a bad case or when oneDNN cannot run it here.
  static std::shared_ptr<Linear> Create(const LinearParams& params, const float* weights,
                                        const float* bias);
  ~Linear();
  const LinearParams& params() const;
  // src: contiguous [rows, in]; dst: contiguous [rows, out]. Safe to call
  // from several threads. Returns true when a guarded unary ran fused (as
  // Conv::Run).
  bool Run(const float* src, float* dst) const;
  bool guarded() const;
  // oneDNN's name of the implementation it chose, e.g. "x64:gemm:jit".
  std::string implementation() const;

  struct Impl;

 private:
  explicit Linear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace torch_tvm::kernels::dnnl_direct
