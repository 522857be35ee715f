// torch_tvm's own float32 GEMM for a linear layer, y = x W^T + b, with W
// packed once at prepack time.
//
// Why a kernel of our own: on a Zen 3 (AVX2, 2 threads) the oneDNN inner
// products run BERT-base's GEMMs (128 x 768 x 768 / 3072) at 125-155 GFLOP/s,
// while onnxruntime's MLAS, with its weights prepacked into column panels, runs
// them at ~173 GFLOP/s inside the graph (its profiler, same machine): that gap
// is most of onnxruntime's lead on BERT. This is the same design as MLAS's:
// W^T is packed into panels of 16 columns ([panel][k][16], zero-padded), the
// input is read in place, and a 6x16 register-blocked AVX2/FMA micro-kernel
// (12 accumulators) runs over blocks of 256 k, so a panel's slice (16 KB) stays
// in L1 while the rows sweep over it.
//
// The post-op runs on each 6x16 tile as it is stored, while it is in
// registers or L1: relu and clamp keep NaN exactly as torch does (max/min with
// the accumulator as the operand that wins on NaN), so no NaN guard is needed
// here; gelu follows ATen's vectorised formula.
//
// On a CPU with AVX-512 (a Zen 5 here) the same packed panels run through a
// 12x32 AVX-512 micro-kernel instead: two adjacent panels at once, 24 zmm
// accumulators (MLAS's AVX-512 tile), so one packing serves both.
//
// No oneDNN or torch header: the kernel threads with OpenMP (this file's .cpp
// is compiled with -fopenmp and, inside torch_tvm, runs on torch's libgomp).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace torch_tvm::kernels::gemm {

struct Epilogue {
  // kGelu is torch.nn.functional.gelu (erf form) computed the way ATen's AVX2
  // kernel computes it (Abramowitz-Stegun 7.1.26 erf, FMA order kept), so the
  // two agree to a few float ulps.
  enum Kind { kNone, kRelu, kClamp, kGelu };
  Kind kind = kNone;
  float lo = 0.f, hi = 0.f;  // kClamp: torch.clamp(y, lo, hi), NaN kept
  // kGelu: gelu(+inf) is NaN, not inf. ATen's vectorised gelu gives NaN for
  // both infinities on AVX-512 CPUs (torch 2.14, a Zen 5) and inf for +inf on
  // AVX2 ones; the caller sets this to match the eager it runs beside.
  bool inf_gives_nan = false;
};

// Which micro-kernel runs: kAuto takes AVX-512 when the CPU has it, else AVX2.
enum class Isa { kAuto, kAvx2, kAvx512 };

class PackedGemm {
 public:
  // True when this CPU runs the micro-kernel (AVX2 and FMA).
  static bool Supported();
  // True when this CPU runs the AVX-512 micro-kernel (AVX-512F).
  static bool SupportsAvx512();
  // weights: contiguous [out, in] floats (torch's layout); bias: `out` floats
  // or nullptr. Both are copied. Throws std::runtime_error when !Supported()
  // or a size is not positive, or `isa` names a kernel this CPU cannot run.
  static std::shared_ptr<PackedGemm> Create(int64_t in, int64_t out, const float* weights,
                                            const float* bias, Epilogue epilogue,
                                            Isa isa = Isa::kAuto);
  // The micro-kernel this GEMM runs: kAvx2 or kAvx512.
  Isa isa() const { return isa_; }
  ~PackedGemm();
  int64_t in() const { return in_; }
  int64_t out() const { return out_; }
  // src: contiguous [rows, in]; dst: contiguous [rows, out], not aliasing src.
  // Runs on the caller's OpenMP team size (omp_get_max_threads), one team per
  // call; safe to call from several threads.
  void Run(const float* src, float* dst, int64_t rows) const;
  // A batch of independent GEMMs, dst[b] = src[b] gemms[b]^T (+ bias, epilogue),
  // src [batch, rows, in] and dst [batch, rows, out] contiguous: the threads
  // share out whole GEMMs (Winograd's alpha^2 small GEMMs, too small to split).
  static void RunBatch(const std::vector<std::shared_ptr<PackedGemm>>& gemms, const float* src,
                       float* dst, int64_t rows);

 private:
  PackedGemm() = default;
  int64_t in_ = 0, out_ = 0, panels_ = 0;
  Epilogue epilogue_;
  Isa isa_ = Isa::kAvx2;
  struct Free {
    void operator()(float* p) const;
  };
  std::unique_ptr<float[], Free> packed_;  // [panels][in][16], 64-byte aligned
  std::unique_ptr<float[], Free> bias_;    // [panels * 16], zero-padded
};

// Scaled dot-product attention without a mask, on the micro-kernels above:
// o[h] = softmax(scale * q[h] k[h]^T) v[h] for each of `heads` heads (with
// `causal`, row r attends to columns 0..r only, torch's is_causal), the
// threads sharing out whole heads; K and V are packed into panels per head.
// q [heads, sq, d], k [heads, skv, d], v [heads, skv, dv] and o [heads, sq,
// dv]: contiguous floats. Why: ATen's CPU flash attention ran BERT-base's 12
// heads x 12 layers at ~79 GFLOP/s on a Zen 5 (10% of the model's time).
// Throws std::runtime_error when !PackedGemm::Supported() or a size is not
// positive.
void Attention(int64_t heads, int64_t sq, int64_t skv, int64_t d, int64_t dv, const float* q,
               const float* k, const float* v, float* o, float scale, bool causal);

}  // namespace torch_tvm::kernels::gemm
