// 2-d convolution through a oneDNN primitive built once, at prepack time.
//
// PyTorch's oneDNN ops (mkldnn::_convolution_pointwise, which Inductor calls
// too) rebuild the primitive descriptor, attributes and memory descriptors on
// every call through ideep: about 270 heap allocations per conv. On
// MobileNetV2 (35 dense convs) that glue took ~5 ms of a ~15 ms call, with the
// second OpenMP thread spinning meanwhile (benchmarks/kernel_profile.py, perf).
// This path builds the primitive and reorders the weights once; a call wraps
// three pointers and executes.
//
// The oneDNN here is the system one (Debian libdnnl-dev): PyTorch's copy is
// linked statically with hidden symbols. Its OpenMP is libgomp.so.1, the same
// soname as the libgomp torch bundles and has already loaded, so the process
// keeps one OpenMP pool. This header includes no oneDNN or torch header: the
// torch include path carries a different oneDNN version's headers.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace torch_tvm::kernels::dnnl_direct {

struct ConvParams {
  std::vector<int64_t> input_nhwc;   // N, H, W, C
  std::vector<int64_t> weight_oihw;  // O, I / groups, KH, KW
  std::vector<int64_t> padding, stride, dilation;  // (h, w), PyTorch's convention
  int64_t groups = 1;
  bool has_bias = false;
  // Accumulate into dst (dst = conv(x) + dst), then apply `unary`.
  bool sum = false;
  // "none", "relu", "sigmoid", "tanh", "swish", "gelu" (algorithm "none" or
  // "tanh") or "hardtanh" (scalars: lo, hi).
  std::string unary = "none";
  std::vector<double> scalars;
  std::string algorithm;
  // `unary` drops NaN as a oneDNN post-op ("relu", "hardtanh") where torch
  // keeps it: build the conv with and without it (no `sum` only), and fuse it
  // only on calls whose input cannot produce a NaN or an infinity, the others
  // running without it. An input qualifies when the caller vouches for it
  // (Run's `trusted`), or when the NanGuard (dnnl_common.h) admits it, a scan
  // done only when the input is at most half the output (an expanding 1x1 conv,
  // a stem conv): a scan of an input as large as the output was measured
  // slower than the caller's separate pass, which reads data the conv just
  // left in cache.
  bool nan_guard = false;
};

class Conv {
 public:
  // weights: contiguous OIHW floats; bias: params.weight_oihw[0] floats or
  // nullptr. Both are copied. Throws std::runtime_error on an unsupported case.
  static std::shared_ptr<Conv> Create(const ConvParams& params, const float* weights,
                                      const float* bias);
  ~Conv();
  // N, OH, OW, OC.
  const std::vector<int64_t>& output_nhwc() const;
  // src: contiguous NHWC input of params.input_nhwc; dst: contiguous NHWC
  // output (read too when params.sum). Safe to call from several threads.
  // Returns true when a guarded unary ran fused; false when the caller still
  // owes it (a guarded conv whose input was neither trusted nor admitted), and
  // for every conv that is not guarded. `trusted`: the caller knows every
  // |src| <= limit() (finite).
  bool Run(const float* src, float* dst, bool trusted = false) const;
  // Built with a guarded fused unary (params.nan_guard without sum).
  bool guarded() const;
  // The NanGuard's bound on |src| (negative when not guarded, or when the
  // weights are not finite).
  float limit() const;
  // oneDNN's name of the implementation it chose, e.g. "jit_1x1:avx2".
  std::string implementation() const;

  struct Impl;

 private:
  explicit Conv(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "major.minor.patch" of the oneDNN linked.
std::string Version();

}  // namespace torch_tvm::kernels::dnnl_direct
