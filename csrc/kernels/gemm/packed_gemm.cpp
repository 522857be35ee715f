#include "kernels/gemm/packed_gemm.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace torch_tvm::kernels::gemm {

namespace {

constexpr int64_t kNR = 16;   // columns per panel: two AVX2 vectors
constexpr int64_t kMR = 6;    // rows per micro-kernel call: 12 accumulators
constexpr int64_t kKC = 256;  // k per block: a panel's slice is 16 KB (L1)
constexpr int64_t kMC = 240;  // rows per block: the input's block is <= 240 KB (L2)
constexpr int64_t kOutputBlockFloats = 48 * 1024;  // 192 KB of output per panel chunk (L2)

float* AlignedFloats(int64_t n) {
  size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
  auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (p == nullptr) throw std::runtime_error("torch_tvm: out of memory packing a GEMM weight");
  std::memset(p, 0, bytes);
  return p;
}

// expf, Cephes' polynomial (about 1 ulp, as Sleef_expf8_u10 that ATen uses).
__attribute__((target("avx2,fma"))) inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f)),
                    _mm256_set1_ps(88.3762626647949f));
  const __m256 n = _mm256_floor_ps(
      _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  for (float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f,
                  5.0000001201e-1f}) {
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(c));
  }
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  // y * 2^n, n in [-127, 128]: through the exponent field.
  const __m256i e = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// ATen's vectorized_gelu (ATen/native/cpu/Gelu.h) with Vectorized<float>::erf
// (vec256_float.h), operation for operation.
__attribute__((target("avx2,fma"))) inline __m256 Gelu(__m256 x) {
  const __m256 neg_zero = _mm256_set1_ps(-0.f), one = _mm256_set1_ps(1.f);
  const __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752440f));
  const __m256 sign = _mm256_and_ps(neg_zero, z);
  const __m256 abs = _mm256_xor_ps(sign, z);
  const __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), abs, one));
  __m256 r = _mm256_fmadd_ps(_mm256_set1_ps(1.061405429f), t, _mm256_set1_ps(-1.453152027f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(1.421413741f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(-0.284496736f));
  r = _mm256_fmadd_ps(r, t, _mm256_set1_ps(0.254829592f));
  const __m256 e = _mm256_xor_ps(neg_zero, Exp(_mm256_xor_ps(neg_zero, _mm256_mul_ps(z, z))));
  const __m256 erf = _mm256_xor_ps(sign, _mm256_fmadd_ps(_mm256_mul_ps(e, t), r, one));
  return _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)), _mm256_add_ps(one, erf));
}

// gelu on a stored tile of `rows` x `cols` (a multiple of 8), in L1. With
// inf_gives_nan, gelu(+inf) is NaN, as ATen's AVX-512 gelu gives it.
__attribute__((target("avx2,fma"))) void GeluTile(float* C, int64_t ldc, int rows, int cols,
                                                 bool inf_gives_nan) {
  const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
  const __m256 nan = _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN());
  for (int i = 0; i < rows; ++i) {
    for (int j = 0; j < cols; j += 8) {
      const __m256 x = _mm256_loadu_ps(C + i * ldc + j);
      __m256 y = Gelu(x);
      if (inf_gives_nan) y = _mm256_blendv_ps(y, nan, _mm256_cmp_ps(x, inf, _CMP_EQ_OQ));
      _mm256_storeu_ps(C + i * ldc + j, y);
    }
  }
}

#define TORCH_TVM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

// C[0:MR, 0:16] (row stride ldc) = (first ? bias : C) + A[0:MR, 0:kc] B[0:kc, 0:16],
// then the epilogue when `ep` is given. B is one packed panel slice (16 floats
// per k, 64-byte aligned); A has row stride lda. Named accumulators, not an
// array: GCC spilled an array of __m256 to the stack on every FMA.
template <int MR>
__attribute__((target("avx2,fma"))) void Micro(int64_t kc, const float* A, int64_t lda,
                                               const float* B, float* C, int64_t ldc, bool first,
                                               const float* bias, const Epilogue* ep) {
#define DECL(i) __m256 c##i##0, c##i##1;
  TORCH_TVM_ROWS(DECL)
#undef DECL
  if (first) {
    const __m256 b0 = _mm256_load_ps(bias), b1 = _mm256_load_ps(bias + 8);
#define INIT(i)                  \
  if constexpr (MR > i) {        \
    c##i##0 = b0;                \
    c##i##1 = b1;                \
  }
    TORCH_TVM_ROWS(INIT)
#undef INIT
  } else {
#define LOAD(i)                                     \
  if constexpr (MR > i) {                           \
    c##i##0 = _mm256_loadu_ps(C + i * ldc);         \
    c##i##1 = _mm256_loadu_ps(C + i * ldc + 8);     \
  }
    TORCH_TVM_ROWS(LOAD)
#undef LOAD
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(B + k * kNR), b1 = _mm256_load_ps(B + k * kNR + 8);
#define FMA(i)                                               \
  if constexpr (MR > i) {                                    \
    const __m256 a = _mm256_broadcast_ss(A + i * lda + k);   \
    c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);               \
    c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);               \
  }
    TORCH_TVM_ROWS(FMA)
#undef FMA
  }
  if (ep != nullptr && (ep->kind == Epilogue::kRelu || ep->kind == Epilogue::kClamp)) {
    // _mm256_max_ps(a, b) returns b when either is NaN: with the accumulator
    // as b, NaN stays NaN, as in torch.relu / torch.clamp.
    const __m256 lo = _mm256_set1_ps(ep->kind == Epilogue::kRelu ? 0.f : ep->lo);
    const bool clamp_hi = ep->kind == Epilogue::kClamp;
    const __m256 hi = _mm256_set1_ps(ep->hi);
#define POST(i)                                                          \
  if constexpr (MR > i) {                                                \
    c##i##0 = _mm256_max_ps(lo, c##i##0);                                \
    c##i##1 = _mm256_max_ps(lo, c##i##1);                                \
    if (clamp_hi) {                                                      \
      c##i##0 = _mm256_min_ps(hi, c##i##0);                              \
      c##i##1 = _mm256_min_ps(hi, c##i##1);                              \
    }                                                                    \
  }
    TORCH_TVM_ROWS(POST)
#undef POST
  }
#define STORE(i)                                    \
  if constexpr (MR > i) {                           \
    _mm256_storeu_ps(C + i * ldc, c##i##0);         \
    _mm256_storeu_ps(C + i * ldc + 8, c##i##1);     \
  }
  TORCH_TVM_ROWS(STORE)
#undef STORE
  if (ep != nullptr && ep->kind == Epilogue::kGelu) GeluTile(C, ldc, MR, 16, ep->inf_gives_nan);
}

#undef TORCH_TVM_ROWS

// The AVX-512 micro-kernel: C[0:MR, 0:16*NP] from NP adjacent panels (B0 and
// B1, each 16 floats per k), A in place (row stride lda) or, when PACKED, as
// PackA leaves it ([kc][MR]); one zmm accumulator per row and panel: 12 rows x
// 2 panels = 24 accumulators, the two B vectors and the broadcast in the other
// 8 of the 32 registers. Same contract as Micro; the epilogues are the same
// operations (vmaxps keeps its second operand on NaN at every width; gelu
// runs on the stored tile through the AVX2 code, as ATen's AVX-512 gelu is
// the same formula).
#define TORCH_TVM_ROWS12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)

// GCC 12's _mm512_max_ps/_mm512_min_ps start from _mm512_undefined_ps(),
// which -Wmaybe-uninitialized reports at every use: a false positive.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
template <int MR, int NP, bool PACKED>
__attribute__((target("avx512f,avx2,fma"))) void Micro512(int64_t kc, const float* A,
                                                          int64_t lda, const float* B0,
                                                          const float* B1, float* C, int64_t ldc,
                                                          bool first, const float* bias,
                                                          const Epilogue* ep) {
#define DECL(i) __m512 c##i##0, c##i##1;
  TORCH_TVM_ROWS12(DECL)
#undef DECL
  if (first) {
    const __m512 b0 = _mm512_load_ps(bias);
    const __m512 b1 = NP > 1 ? _mm512_load_ps(bias + 16) : b0;
#define INIT(i)                          \
  if constexpr (MR > i) {                \
    c##i##0 = b0;                        \
    if constexpr (NP > 1) c##i##1 = b1;  \
  }
    TORCH_TVM_ROWS12(INIT)
#undef INIT
  } else {
#define LOAD(i)                                                     \
  if constexpr (MR > i) {                                           \
    c##i##0 = _mm512_loadu_ps(C + i * ldc);                         \
    if constexpr (NP > 1) c##i##1 = _mm512_loadu_ps(C + i * ldc + 16); \
  }
    TORCH_TVM_ROWS12(LOAD)
#undef LOAD
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(B0 + k * kNR);
    const __m512 b1 = NP > 1 ? _mm512_load_ps(B1 + k * kNR) : b0;
#define FMA(i)                                                          \
  if constexpr (MR > i) {                                               \
    const __m512 a = _mm512_set1_ps(PACKED ? A[k * MR + i] : A[i * lda + k]);  \
    c##i##0 = _mm512_fmadd_ps(a, b0, c##i##0);                          \
    if constexpr (NP > 1) c##i##1 = _mm512_fmadd_ps(a, b1, c##i##1);    \
  }
    TORCH_TVM_ROWS12(FMA)
#undef FMA
  }
  if (ep != nullptr && (ep->kind == Epilogue::kRelu || ep->kind == Epilogue::kClamp)) {
    const __m512 lo = _mm512_set1_ps(ep->kind == Epilogue::kRelu ? 0.f : ep->lo);
    const bool clamp_hi = ep->kind == Epilogue::kClamp;
    const __m512 hi = _mm512_set1_ps(ep->hi);
#define POST(i)                                                       \
  if constexpr (MR > i) {                                             \
    c##i##0 = _mm512_max_ps(lo, c##i##0);                             \
    if constexpr (NP > 1) c##i##1 = _mm512_max_ps(lo, c##i##1);       \
    if (clamp_hi) {                                                   \
      c##i##0 = _mm512_min_ps(hi, c##i##0);                           \
      if constexpr (NP > 1) c##i##1 = _mm512_min_ps(hi, c##i##1);     \
    }                                                                 \
  }
    TORCH_TVM_ROWS12(POST)
#undef POST
  }
#define STORE(i)                                                       \
  if constexpr (MR > i) {                                              \
    _mm512_storeu_ps(C + i * ldc, c##i##0);                            \
    if constexpr (NP > 1) _mm512_storeu_ps(C + i * ldc + 16, c##i##1); \
  }
  TORCH_TVM_ROWS12(STORE)
#undef STORE
  if (ep != nullptr && ep->kind == Epilogue::kGelu) {
    GeluTile(C, ldc, MR, 16 * NP, ep->inf_gives_nan);
  }
}

#pragma GCC diagnostic pop
#undef TORCH_TVM_ROWS12

// Both micro-kernels behind one signature: rows, A, lda, the first panel's
// slice, the second's (AVX-512 pairs only), C, ldc, first, bias, epilogue.
using MicroFn = void (*)(int64_t, const float*, int64_t, const float*, const float*, float*,
                         int64_t, bool, const float*, const Epilogue*);

template <int MR>
void Micro2(int64_t kc, const float* A, int64_t lda, const float* B, const float*, float* C,
            int64_t ldc, bool first, const float* bias, const Epilogue* ep) {
  Micro<MR>(kc, A, lda, B, C, ldc, first, bias, ep);
}

constexpr int kMaxMR = 12;
constexpr MicroFn kMicroAvx2[kMaxMR + 1] = {nullptr,   Micro2<1>, Micro2<2>, Micro2<3>,
                                            Micro2<4>, Micro2<5>, Micro2<6>};
template <int NP, bool P>
constexpr MicroFn kMicroAvx512[kMaxMR + 1] = {
    nullptr,               Micro512<1, NP, P>,  Micro512<2, NP, P>,  Micro512<3, NP, P>,
    Micro512<4, NP, P>,    Micro512<5, NP, P>,  Micro512<6, NP, P>,  Micro512<7, NP, P>,
    Micro512<8, NP, P>,    Micro512<9, NP, P>,  Micro512<10, NP, P>, Micro512<11, NP, P>,
    Micro512<12, NP, P>};

// The blocking of one ISA (k blocks are kKC for both): rows per micro-kernel
// call, panels per call, and the micro-kernels: [packed A][panels - 1] (no
// pair: nullptr; no packed A: the in-place ones again).
struct Kernel {
  int64_t mr, np;
  bool can_pack_a;
  const MicroFn* micro[2][2];
};
constexpr Kernel kAvx2Kernel{kMR, 1, false, {{kMicroAvx2, nullptr}, {kMicroAvx2, nullptr}}};
constexpr Kernel kAvx512Kernel{
    12, 2, true,
    {{kMicroAvx512<1, false>, kMicroAvx512<2, false>},
     {kMicroAvx512<1, true>, kMicroAvx512<2, true>}}};
const Kernel& KernelOf(Isa isa) { return isa == Isa::kAvx512 ? kAvx512Kernel : kAvx2Kernel; }

// Rows in the next micro-kernel call: whole tiles of mr, but a remainder is
// shared with the last whole tile (13 rows of AVX2 go 6, 4, 3, not 6, 6, 1):
// a tile of 1-2 rows has too few accumulators to hide the FMA latency.
int64_t NextRows(int64_t remaining, int64_t mr) {
  return remaining > mr && remaining < 2 * mr ? (remaining + 1) / 2 : std::min(mr, remaining);
}

// W [out, in], element (n, k) at w[n * so + k * si], into 16-column panels
// [panel][in][16] at dst (already zeroed: the padding columns stay 0).
void PackPanels(const float* w, int64_t in, int64_t out, int64_t so, int64_t si, float* dst) {
  for (int64_t n = 0; n < out; ++n) {
    float* column = dst + (n / kNR) * in * kNR + n % kNR;
    for (int64_t k = 0; k < in; ++k) column[k * kNR] = w[n * so + k * si];
  }
}

}  // namespace

void PackedGemm::Free::operator()(float* p) const { std::free(p); }

bool PackedGemm::Supported() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

bool PackedGemm::SupportsAvx512() {
  __builtin_cpu_init();
  return Supported() && __builtin_cpu_supports("avx512f");
}

std::shared_ptr<PackedGemm> PackedGemm::Create(int64_t in, int64_t out, const float* weights,
                                               const float* bias, Epilogue epilogue,
                                               Isa isa) {
  if (!Supported()) throw std::runtime_error("torch_tvm: the packed GEMM needs AVX2 and FMA");
  if (isa == Isa::kAvx512 && !SupportsAvx512()) {
    throw std::runtime_error("torch_tvm: this CPU has no AVX-512 for the packed GEMM");
  }
  if (in <= 0 || out <= 0) throw std::runtime_error("torch_tvm: packed GEMM sizes must be > 0");
  if (epilogue.kind == Epilogue::kClamp && !(epilogue.lo <= epilogue.hi)) {
    throw std::runtime_error("torch_tvm: packed GEMM clamp needs lo <= hi");
  }
  std::shared_ptr<PackedGemm> g(new PackedGemm());
  g->in_ = in;
  g->out_ = out;
  g->panels_ = (out + kNR - 1) / kNR;
  g->epilogue_ = epilogue;
  g->isa_ = isa != Isa::kAuto ? isa : SupportsAvx512() ? Isa::kAvx512 : Isa::kAvx2;
  g->packed_.reset(AlignedFloats(g->panels_ * in * kNR));
  g->bias_.reset(AlignedFloats(g->panels_ * kNR));
  PackPanels(weights, in, out, in, 1, g->packed_.get());
  if (bias != nullptr) std::memcpy(g->bias_.get(), bias, static_cast<size_t>(out) * sizeof(float));
  return g;
}

PackedGemm::~PackedGemm() = default;

namespace {

// A[0:rows, 0:kc] (row stride lda) into dst tile by tile, the tiles of
// NextRows: the tile of `mr` rows at row m becomes [kc][mr] at dst + m * kc,
// so the micro-kernel's broadcasts read one contiguous stream.
void PackA(const float* A, int64_t lda, int64_t rows, int64_t kc, int64_t mr_max, float* dst) {
  for (int64_t m = 0, mr; m < rows; m += mr) {
    mr = NextRows(rows - m, mr_max);
    float* d = dst + m * kc;
    for (int64_t i = 0; i < mr; ++i) {
      const float* a = A + (m + i) * lda;
      for (int64_t k = 0; k < kc; ++k) d[k * mr + i] = a[k];
    }
  }
}

// Rows [r0, r1) by panels [p0, p1) of one call, on one thread.
void RunBlock(const Kernel& kernel, const float* src, float* dst, int64_t in, int64_t out,
              const float* packed, const float* bias, const Epilogue& ep, int64_t r0, int64_t r1,
              int64_t p0, int64_t p1) {
  // The last panel may be narrower than 16 columns: it accumulates here and
  // its valid columns are copied out after the last k block.
  alignas(64) float scratch[kMC * kNR];
  // A is packed when its rows are a multiple of 4 KB apart (BERT's 3072-wide
  // input): the 12 rows a tile reads at each k then fall in one L1 set and
  // evict each other and the panels (4K aliasing). Measured on a Zen 5, 2
  // threads: 128x3072x768 276 -> 322 GFLOP/s packed, while packing a 192-wide
  // input cost 382 -> 314. Per thread (240 KB: too big for an OpenMP stack).
  const bool packs_a = kernel.can_pack_a && (in * sizeof(float)) % 4096 == 0;
  static thread_local std::unique_ptr<float[]> a_block;
  if (packs_a && !a_block) a_block.reset(new float[kMC * kKC]);
  float* a_packed = a_block.get();
  for (int64_t mc = r0; mc < r1; mc += kMC) {
    const int64_t rows = std::min(kMC, r1 - mc);
    // Panels in chunks whose output block (rows x chunk x 16 floats) stays in
    // L2 across the k blocks: without it, BERT's 128x3072 output (768 KB a
    // thread) went back to L3 on every k block. Whole pairs for AVX-512.
    int64_t chunk = std::max<int64_t>(1, kOutputBlockFloats / (rows * kNR));
    chunk = std::max(kernel.np, chunk / kernel.np * kernel.np);
    for (int64_t c0 = p0; c0 < p1; c0 += chunk) {
      const int64_t c1 = std::min(p1, c0 + chunk);
      for (int64_t k0 = 0; k0 < in; k0 += kKC) {
        const int64_t kc = std::min(kKC, in - k0);
        const bool first = k0 == 0, last = k0 + kc == in;
        if (packs_a) PackA(src + mc * in + k0, in, rows, kc, kernel.mr, a_packed);
        for (int64_t p = c0; p < c1;) {
          const int64_t n0 = p * kNR;
          const bool partial = n0 + kNR > out;
          // Two full panels at once where the kernel takes pairs.
          const bool pair = kernel.np == 2 && p + 1 < c1 && n0 + 2 * kNR <= out;
          const MicroFn* micro = kernel.micro[packs_a][pair];
          float* C = partial ? scratch : dst + mc * out + n0;
          const int64_t ldc = partial ? kNR : out;
          const float* B = packed + (p * in + k0) * kNR;
          for (int64_t m = 0, mr; m < rows; m += mr) {
            mr = NextRows(rows - m, kernel.mr);
            const float* A = packs_a ? a_packed + m * kc : src + (mc + m) * in + k0;
            micro[mr](kc, A, in, B, B + in * kNR, C + m * ldc, ldc, first, bias + n0,
                      last ? &ep : nullptr);
          }
          if (partial && last) {
            for (int64_t m = 0; m < rows; ++m) {
              std::memcpy(dst + (mc + m) * out + n0, scratch + m * kNR,
                          static_cast<size_t>(out - n0) * sizeof(float));
            }
          }
          p += pair ? 2 : 1;
        }
      }
    }
  }
}

// One team per call, on the caller's OpenMP thread count; none inside a
// parallel region.
int TeamSize() { return omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads()); }

}  // namespace

void PackedGemm::Run(const float* src, float* dst, int64_t rows) const {
  if (rows <= 0) return;
  const Kernel& kernel = KernelOf(isa_);
  const int threads = TeamSize();
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    // Each thread takes a share of the panels (in whole pairs for AVX-512)
    // while there are at least two per thread (every thread then reads all
    // rows, which are small next to W); otherwise a share of the rows, in
    // whole micro-kernel tiles.
    int64_t r0 = 0, r1 = rows, p0 = 0, p1 = panels_;
    if (panels_ >= 2 * kernel.np * team || rows < kernel.mr * team) {
      const int64_t units = (panels_ + kernel.np - 1) / kernel.np;
      p0 = std::min(panels_, units * t / team * kernel.np);
      p1 = std::min(panels_, units * (t + 1) / team * kernel.np);
    } else {
      const int64_t blocks = (rows + kernel.mr - 1) / kernel.mr;
      r0 = std::min(rows, blocks * t / team * kernel.mr);
      r1 = std::min(rows, blocks * (t + 1) / team * kernel.mr);
    }
    if (r0 < r1 && p0 < p1) {
      RunBlock(kernel, src, dst, in_, out_, packed_.get(), bias_.get(), epilogue_, r0, r1, p0,
               p1);
    }
  }
}

void PackedGemm::RunBatch(const std::vector<std::shared_ptr<PackedGemm>>& gemms,
                          const float* src, float* dst, int64_t rows) {
  const int64_t batch = static_cast<int64_t>(gemms.size());
  if (rows <= 0 || batch == 0) return;
  const int64_t in = gemms[0]->in_, out = gemms[0]->out_;
  for (const auto& g : gemms) {
    if (g->in_ != in || g->out_ != out) throw std::runtime_error("torch_tvm: ragged GEMM batch");
  }
  const int threads = TeamSize();
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t b = 0; b < batch; ++b) {
    const PackedGemm& g = *gemms[b];
    RunBlock(KernelOf(g.isa_), src + b * rows * in, dst + b * rows * out, in, out,
             g.packed_.get(), g.bias_.get(), g.epilogue_, 0, rows, 0, g.panels_);
  }
}

namespace {

// A growing 64-byte aligned buffer per thread and slot, zeroed when it grows.
float* ThreadBuffer(int slot, int64_t n) {
  struct Buffer {
    float* p = nullptr;
    int64_t n = 0;
    ~Buffer() { std::free(p); }
  };
  thread_local Buffer buffers[4];
  Buffer& b = buffers[slot];
  if (b.n < n) {
    std::free(b.p);
    b.p = nullptr;
    b.p = AlignedFloats(n);
    b.n = n;
  }
  return b.p;
}

// row[0:n] = softmax(scale * row[0:allowed]), row[allowed:n] = 0 (causal).
// NaN anywhere in the allowed part makes the whole row NaN, as in eager (the
// max ignores it; its exp and so the sum do not), and +inf makes it NaN too
// (inf - inf), which Exp's clamp would otherwise hide: kept by the blend.
__attribute__((target("avx2,fma"))) void SoftmaxRow(float* row, int64_t n, int64_t allowed,
                                                   float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  float max = -std::numeric_limits<float>::infinity();
  __m256 vmax = _mm256_set1_ps(max);
  int64_t c = 0;
  for (; c + 8 <= allowed; c += 8) {
    const __m256 x = _mm256_mul_ps(_mm256_loadu_ps(row + c), s);
    _mm256_storeu_ps(row + c, x);
    vmax = _mm256_max_ps(x, vmax);  // NaN x: keeps vmax
  }
  for (; c < allowed; ++c) {
    row[c] *= scale;
    if (row[c] > max) max = row[c];
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  for (float l : lanes) max = l > max ? l : max;
  const __m256 m = _mm256_set1_ps(max);
  __m256 vsum = _mm256_setzero_ps();
  float sum = 0.f;
  for (c = 0; c + 8 <= allowed; c += 8) {
    const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(row + c), m);
    const __m256 e = _mm256_blendv_ps(Exp(t), t, _mm256_cmp_ps(t, t, _CMP_UNORD_Q));
    _mm256_storeu_ps(row + c, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  for (; c < allowed; ++c) {
    row[c] = std::exp(row[c] - max);
    sum += row[c];
  }
  _mm256_store_ps(lanes, vsum);
  for (float l : lanes) sum += l;
  const float inv = 1.f / sum;
  const __m256 vinv = _mm256_set1_ps(inv);
  for (c = 0; c + 8 <= allowed; c += 8) {
    _mm256_storeu_ps(row + c, _mm256_mul_ps(_mm256_loadu_ps(row + c), vinv));
  }
  for (; c < allowed; ++c) row[c] *= inv;
  for (c = allowed; c < n; ++c) row[c] = 0.f;
}

}  // namespace

void Attention(int64_t heads, int64_t sq, int64_t skv, int64_t d, int64_t dv, const float* q,
               const float* k, const float* v, float* o, float scale, bool causal) {
  if (!PackedGemm::Supported()) {
    throw std::runtime_error("torch_tvm: the packed attention needs AVX2 and FMA");
  }
  if (heads <= 0 || sq <= 0) return;
  if (skv <= 0 || d <= 0 || dv <= 0) throw std::runtime_error("torch_tvm: attention sizes");
  const Kernel& kernel = KernelOf(PackedGemm::SupportsAvx512() ? Isa::kAvx512 : Isa::kAvx2);
  const int64_t kv_panels = (skv + kNR - 1) / kNR, dv_panels = (dv + kNR - 1) / kNR;
  const Epilogue none;
  const int threads = TeamSize();
  // Whole heads per thread: each one is two small GEMMs and a softmax, all in L2.
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t h = 0; h < heads; ++h) {
    float* k_panels = ThreadBuffer(0, kv_panels * d * kNR);
    float* v_panels = ThreadBuffer(1, dv_panels * skv * kNR);
    float* scores = ThreadBuffer(2, sq * skv);
    const float* zeros = ThreadBuffer(3, std::max(kv_panels, dv_panels) * kNR);  // no bias
    // K as the weight of scores = q k^T: out = skv rows of k, in = d.
    PackPanels(k + h * skv * d, d, skv, d, 1, k_panels);
    // V^T as the weight of o = p v: out = dv columns of v, in = skv.
    PackPanels(v + h * skv * dv, skv, dv, 1, dv, v_panels);
    RunBlock(kernel, q + h * sq * d, scores, d, skv, k_panels, zeros, none, 0, sq, 0, kv_panels);
    for (int64_t r = 0; r < sq; ++r) {
      SoftmaxRow(scores + r * skv, skv, causal ? std::min(skv, r + 1) : skv, scale);
    }
    RunBlock(kernel, scores, o + h * sq * dv, skv, dv, v_panels, zeros, none, 0, sq, 0,
             dv_panels);
  }
}

}  // namespace torch_tvm::kernels::gemm
