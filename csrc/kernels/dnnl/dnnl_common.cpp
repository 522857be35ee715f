#include "kernels/dnnl/dnnl_common.h"

#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <unordered_map>

namespace torch_tvm::kernels::dnnl_direct::detail {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

void* Scratch(size_t bytes) {
  struct Buffer {
    void* ptr = nullptr;
    size_t size = 0;
    ~Buffer() { std::free(ptr); }
  };
  thread_local Buffer buf;
  if (bytes > buf.size) {
    std::free(buf.ptr);
    buf.ptr = nullptr;
    buf.size = 0;
    size_t rounded = (bytes + 63) / 64 * 64;
    buf.ptr = std::aligned_alloc(64, rounded);
    if (buf.ptr == nullptr) throw std::bad_alloc();
    buf.size = rounded;
  }
  return buf.ptr;
}

void AppendUnary(dnnl::post_ops& ops, const std::string& u, const std::vector<double>& scalars,
                 const std::string& algorithm) {
  using alg = dnnl::algorithm;
  if (u == "none") return;
  if (u == "relu") return ops.append_eltwise(1.f, alg::eltwise_relu, 0.f, 0.f);
  if (u == "sigmoid") return ops.append_eltwise(1.f, alg::eltwise_logistic, 0.f, 0.f);
  if (u == "tanh") return ops.append_eltwise(1.f, alg::eltwise_tanh, 0.f, 0.f);
  if (u == "swish") return ops.append_eltwise(1.f, alg::eltwise_swish, 1.f, 0.f);
  if (u == "gelu") {
    if (algorithm == "tanh") return ops.append_eltwise(1.f, alg::eltwise_gelu_tanh, 0.f, 0.f);
    if (algorithm.empty() || algorithm == "none")
      return ops.append_eltwise(1.f, alg::eltwise_gelu_erf, 0.f, 0.f);
  }
  if (u == "hardtanh" && scalars.size() == 2) {
    return ops.append_eltwise(1.f, alg::eltwise_clip, static_cast<float>(scalars[0]),
                              static_cast<float>(scalars[1]));
  }
  throw std::runtime_error("torch_tvm: no oneDNN post-op for '" + u + "' (algorithm '" +
                           algorithm + "')");
}

dnnl::memory PackOnce(const dnnl::memory::desc& wanted, const dnnl::memory::desc& user,
                      const float* data) {
  dnnl::memory src(user, Engine(), const_cast<float*>(data));
  dnnl::memory packed(wanted, Engine());
  dnnl::reorder(src, packed).execute(Stream(), src, packed);
  Stream().wait();
  return packed;
}

NanGuard NanGuard::For(const float* w, int64_t rows, int64_t row_len, const float* bias) {
  double w_bound = 0, b_bound = 0;
  for (int64_t o = 0; o < rows; ++o) {
    double sum = 0;
    for (int64_t i = 0; i < row_len; ++i) sum += std::fabs(static_cast<double>(w[o * row_len + i]));
    if (!std::isfinite(sum)) return NanGuard{};
    if (sum > w_bound) w_bound = sum;
    if (bias != nullptr) {
      if (!std::isfinite(bias[o])) return NanGuard{};
      b_bound = std::fmax(b_bound, std::fabs(static_cast<double>(bias[o])));
    }
  }
  const double room = static_cast<double>(FLT_MAX) / 4 - b_bound;
  if (!(room > 0)) return NanGuard{};
  // Rounded down to a float, and never above FLT_MAX: an infinite input times a
  // zero weight is a NaN.
  double limit = w_bound > 0 ? std::fmin(room / w_bound, static_cast<double>(FLT_MAX)) : FLT_MAX;
  float f = static_cast<float>(limit);
  if (static_cast<double>(f) > limit) f = std::nextafter(f, 0.f);
  return NanGuard{f};
}

namespace {

// Any !(|x| <= limit), NaN included. Vectorised per ISA (target_clones picks
// the AVX2 or AVX-512 body at load time); one pass, no early exit: the common
// case reads everything anyway.
__attribute__((target_clones("avx512f", "avx2", "default"))) bool AnyOutside(const float* x,
                                                                              int64_t n,
                                                                              float limit) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) bad |= !(std::fabs(x[i]) <= limit);
  return bad != 0;
}

}  // namespace

bool NanGuard::Admits(const float* x, int64_t n) const {
  return limit >= 0 && !AnyOutside(x, n, limit);
}

void Execute(const dnnl::primitive& prim, std::unordered_map<int, dnnl::memory> args,
             const dnnl::memory::desc& scratch_md, size_t scratch_bytes, const char* what) {
  if (scratch_bytes > 0) {
    args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(scratch_md, Engine(), Scratch(scratch_bytes)));
  }
  try {
    prim.execute(Stream(), args);
    Stream().wait();
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("torch_tvm: oneDNN ") + what + " failed: " + e.what());
  }
}

}  // namespace torch_tvm::kernels::dnnl_direct::detail
