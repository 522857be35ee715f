// Call counters of the extern kernels, read by torch_tvm.stats()["kernels"]
// through "torch_tvm.kernels.counters"; tests use them to prove which kernel ran.
#pragma once

#include <atomic>
#include <cstdint>

namespace torch_tvm::kernels {

struct Counters {
  std::atomic<int64_t> conv2d{0}, conv2d_in_place{0}, linear{0}, matmul{0};
  // Conv calls that ran the direct oneDNN primitive (kernels/dnnl/direct_conv.h).
  std::atomic<int64_t> conv2d_direct{0};
  // Linear calls that ran the direct oneDNN inner product (kernels/dnnl/direct_linear.h),
  // and linears packed for PyTorch's op because that primitive could not run here.
  std::atomic<int64_t> linear_direct{0}, linear_direct_refused{0};
  // Linear calls that ran torch_tvm's own packed GEMM (kernels/gemm/packed_gemm.h),
  // and linears asked for it that it could not take (no AVX2/FMA, other dtype).
  std::atomic<int64_t> linear_sgemm{0}, linear_sgemm_refused{0};
  // Batches of packed GEMMs run (batched_gemm: the Winograd convolutions' GEMMs).
  std::atomic<int64_t> batched_gemm{0};
  // Direct conv and linear calls with a NaN-dropping relu/clamp that a NanGuard
  // (kernels/dnnl/dnnl_common.h) let run fused, and those it sent to the
  // unfused primitive plus the NaN-keeping ATen op.
  std::atomic<int64_t> nan_guard_fused{0}, nan_guard_unfused{0};
  // Of the fused ones, calls whose input a clamp-bounded producer conv had just
  // written (conv2d_nhwc_trusting): no scan needed.
  std::atomic<int64_t> nan_guard_trusted{0};
  std::atomic<int64_t> prepacked{0}, layout_copies{0};
  // ATen kernels chosen over TVM's own for a norm, softmax or sum/mean
  // (aten_kernels.cpp).
  std::atomic<int64_t> aten_softmax{0}, aten_layer_norm{0}, aten_group_norm{0}, aten_reduce{0};
  // ATen kernels for ops TVM has no fast kernel for: 3-d and transposed 1-d/3-d
  // convolutions, 3-d max pooling (aten_kernels.cpp).
  std::atomic<int64_t> aten_convolution{0}, aten_max_pool3d{0};
  // ATen's fused scaled_dot_product_attention, for long sequences
  // (convert/ops/attention.cpp).
  std::atomic<int64_t> aten_sdpa{0};
  // Of those, calls without a mask that ran torch_tvm's packed attention
  // (kernels/gemm/packed_gemm.h, Attention) instead of ATen's.
  std::atomic<int64_t> sdpa_packed{0};
  // ATen kernels with several outputs: recurrent layers and embedding_bag
  // (aten_kernels.cpp).
  std::atomic<int64_t> aten_lstm{0}, aten_gru{0}, aten_embedding_bag{0};
  // Convolutions run as Winograd TIR kernels (torch_tvm/_winograd.py).
  std::atomic<int64_t> winograd{0};
  // Parallel loops of TVM-generated code (parallel_launch.cpp): regions
  // launched, and the most OpenMP threads one region ran on.
  std::atomic<int64_t> parallel_launches{0}, parallel_max_threads{0};
};

inline Counters& GetCounters() {
  static Counters counters;
  return counters;
}

}  // namespace torch_tvm::kernels
