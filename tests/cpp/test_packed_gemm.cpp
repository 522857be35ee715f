// torch_tvm's packed GEMM (csrc/kernels/gemm/packed_gemm.h) against a naive
// double-precision reference, with no torch or TVM in between: every row and
// column remainder of the 6x16 AVX2 micro-kernel and, where the CPU has
// AVX-512, of the 12x32 one (every check runs on each micro-kernel the CPU
// can run), k across block edges, both ways of splitting the work between
// threads, and the NaN-keeping epilogues.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "kernels/gemm/packed_gemm.h"
#include "random_data.h"

namespace {

using torch_tvm::kernels::gemm::Attention;
using torch_tvm::kernels::gemm::Epilogue;
using torch_tvm::kernels::gemm::Isa;
using torch_tvm::kernels::gemm::PackedGemm;

// Every micro-kernel this CPU can run.
std::vector<Isa> Isas() {
  std::vector<Isa> isas = {Isa::kAvx2};
  if (PackedGemm::SupportsAvx512()) isas.push_back(Isa::kAvx512);
  return isas;
}

// torch.relu / torch.clamp semantics: NaN in, NaN out.
double Post(const Epilogue& ep, double v) {
  if (std::isnan(v) || ep.kind == Epilogue::kNone) return v;
  if (ep.kind == Epilogue::kRelu) return v > 0 ? v : 0;
  if (ep.kind == Epilogue::kGelu) return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  return std::fmin(std::fmax(v, ep.lo), ep.hi);
}

std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w,
                              const float* bias, int64_t rows, int64_t in, int64_t out,
                              const Epilogue& ep) {
  std::vector<double> y(rows * out);
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t n = 0; n < out; ++n) {
      double acc = bias ? bias[n] : 0.0;
      for (int64_t k = 0; k < in; ++k) acc += double(x[m * in + k]) * w[n * in + k];
      y[m * out + n] = Post(ep, acc);
    }
  }
  return y;
}

void Check(int64_t rows, int64_t in, int64_t out, bool with_bias, Epilogue ep = {},
           int threads = 2) {
  SCOPED_TRACE(testing::Message() << rows << "x" << in << "x" << out << " bias=" << with_bias
                                  << " epilogue=" << ep.kind << " threads=" << threads);
  auto x = Random(rows * in, 1), w = Random(out * in, 2), b = Random(out, 3);
  const float* bias = with_bias ? b.data() : nullptr;
  auto ref = Reference(x, w, bias, rows, in, out, ep);
  for (Isa isa : Isas()) {
    SCOPED_TRACE(isa == Isa::kAvx512 ? "avx512" : "avx2");
    auto gemm = PackedGemm::Create(in, out, w.data(), bias, ep, isa);
    ASSERT_EQ(gemm->isa(), isa);
    // Filled with a sentinel: every element must be written.
    std::vector<float> y(rows * out, 12345.f);
    omp_set_num_threads(threads);
    gemm->Run(x.data(), y.data(), rows);
    for (int64_t i = 0; i < rows * out; ++i) {
      ASSERT_NEAR(y[i], ref[i], 1e-5 * (1 + std::sqrt(double(in)))) << "at " << i;
    }
  }
}

class PackedGemmTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!PackedGemm::Supported()) GTEST_SKIP() << "no AVX2/FMA on this CPU";
  }
};

TEST_F(PackedGemmTest, EveryRowAndColumnRemainder) {
  // Rows: remainders of 6 and of 12, and tails shared with the last whole tile
  // (8 = 4 + 4 on AVX2, 20 = 10 + 10 on AVX-512). Columns: partial panels, and
  // for AVX-512 an odd number of full panels (48) and a pair then a partial (40).
  for (int64_t rows : {1, 5, 6, 7, 8, 12, 13, 20, 25})
    for (int64_t out : {1, 15, 16, 17, 33, 40, 48}) Check(rows, 19, out, /*with_bias=*/true);
}

TEST_F(PackedGemmTest, AutoTakesTheWidestKernel) {
  std::vector<float> w(4, 1.f);
  auto gemm = PackedGemm::Create(2, 2, w.data(), nullptr, {});
  EXPECT_EQ(gemm->isa(), PackedGemm::SupportsAvx512() ? Isa::kAvx512 : Isa::kAvx2);
  if (!PackedGemm::SupportsAvx512()) {
    EXPECT_THROW(PackedGemm::Create(2, 2, w.data(), nullptr, {}, Isa::kAvx512),
                 std::runtime_error);
  }
}

TEST_F(PackedGemmTest, KAcrossBlockEdges) {
  for (int64_t in : {1, 255, 256, 257, 600}) Check(8, in, 40, /*with_bias=*/false);
}

TEST_F(PackedGemmTest, InputRowsFourKilobytesApart) {
  // The AVX-512 kernel packs A when its rows are a multiple of 4 KB apart
  // (in % 1024 == 0): every row remainder and a partial panel on that path.
  for (int64_t rows : {1, 11, 12, 25}) Check(rows, 1024, 40, /*with_bias=*/true);
  Check(13, 2048, 37, true, {Epilogue::kRelu});
}

TEST_F(PackedGemmTest, SplitsPanelsOrRowsBetweenThreads) {
  Check(128, 64, 768, true, {}, 2);  // many panels: split by columns
  Check(500, 48, 24, true, {}, 2);   // two panels, many rows: split by rows, past one row block
  Check(500, 48, 24, true, {}, 1);
  Check(7, 32, 16, true, {}, 3);     // fewer rows than threads' blocks
  Check(128, 64, 80, true, {}, 2);   // five panels: AVX-512 splits pairs, one thread has 3
}

TEST_F(PackedGemmTest, ReluAndClampEpilogues) {
  Check(13, 40, 37, true, {Epilogue::kRelu});
  Check(13, 40, 37, true, {Epilogue::kClamp, -0.25f, 0.5f});
  Check(13, 300, 37, false, {Epilogue::kClamp, 0.f, 6.f});  // applied only after the last k block
}

TEST_F(PackedGemmTest, GeluEpilogue) {
  Check(13, 40, 37, true, {Epilogue::kGelu});
  Check(7, 300, 16, false, {Epilogue::kGelu});
}

TEST_F(PackedGemmTest, GeluAcrossItsRange) {
  // One input column times weights from -12 to 12: gelu of every value, both
  // tails included (the erf approximation and the exp range), and gelu of NaN
  // and the infinities as torch gives them (NaN, inf, NaN).
  const int64_t out = 241;
  std::vector<float> w(out);
  for (int64_t n = 0; n < out; ++n) w[n] = -12.f + 0.1f * n;
  std::vector<float> x = {1.f, std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity()};
  // inf_gives_nan: gelu(+inf) is NaN too, as ATen's AVX-512 gelu gives it.
  for (Isa isa : Isas()) for (bool inf_gives_nan : {false, true}) {
    Epilogue ep{Epilogue::kGelu};
    ep.inf_gives_nan = inf_gives_nan;
    auto gemm = PackedGemm::Create(1, out, w.data(), nullptr, ep, isa);
    std::vector<float> y(3 * out);
    gemm->Run(x.data(), y.data(), 3);
    for (int64_t n = 0; n < out; ++n) {
      const double v = w[n];
      EXPECT_NEAR(y[n], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-6) << v;
      EXPECT_TRUE(std::isnan(y[out + n])) << n;
      if (w[n] > 0 && !inf_gives_nan) {
        EXPECT_EQ(y[2 * out + n], std::numeric_limits<float>::infinity()) << n;
      }
      if (w[n] > 0 && inf_gives_nan) EXPECT_TRUE(std::isnan(y[2 * out + n])) << n;
      if (w[n] < 0) EXPECT_TRUE(std::isnan(y[2 * out + n])) << n;  // -inf: torch gives NaN
    }
  }
}

TEST_F(PackedGemmTest, EpiloguesKeepNaNAndInfinities) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const int64_t in = 4, out = 3;
  // Row 0: a NaN input; row 1: +inf times a positive weight; row 2: -inf.
  std::vector<float> x = {nan, 0, 0, 0, inf, 0, 0, 0, -inf, 0, 0, 0};
  std::vector<float> w = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0};
  for (Isa isa : Isas())
  for (Epilogue ep : {Epilogue{Epilogue::kRelu}, Epilogue{Epilogue::kClamp, -1.f, 6.f}}) {
    auto gemm = PackedGemm::Create(in, out, w.data(), nullptr, ep, isa);
    std::vector<float> y(3 * out);
    gemm->Run(x.data(), y.data(), 3);
    for (int64_t n = 0; n < out; ++n) EXPECT_TRUE(std::isnan(y[n])) << n;
    EXPECT_EQ(y[out], ep.kind == Epilogue::kRelu ? inf : 6.f);
    EXPECT_EQ(y[2 * out], ep.kind == Epilogue::kRelu ? 0.f : -1.f);
  }
}

TEST_F(PackedGemmTest, BatchOfIndependentGemms) {
  // Five GEMMs of 13x40 -> 24, each with its own weight, shared out between
  // two threads; each matches its own reference.
  const int64_t batch = 5, rows = 13, in = 40, out = 24;
  auto x = Random(batch * rows * in, 4);
  std::vector<std::vector<float>> ws;
  std::vector<std::shared_ptr<PackedGemm>> gemms;
  for (int64_t b = 0; b < batch; ++b) {
    ws.push_back(Random(out * in, 10 + b));
    gemms.push_back(PackedGemm::Create(in, out, ws.back().data(), nullptr, {}));
  }
  std::vector<float> y(batch * rows * out, 12345.f);
  omp_set_num_threads(2);
  PackedGemm::RunBatch(gemms, x.data(), y.data(), rows);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<float> xb(x.begin() + b * rows * in, x.begin() + (b + 1) * rows * in);
    auto ref = Reference(xb, ws[b], nullptr, rows, in, out, {});
    for (int64_t i = 0; i < rows * out; ++i) {
      ASSERT_NEAR(y[b * rows * out + i], ref[i], 1e-4) << "gemm " << b << " at " << i;
    }
  }
  auto other = PackedGemm::Create(in + 1, out, Random(out * (in + 1), 9).data(), nullptr, {});
  gemms.push_back(other);
  EXPECT_THROW(PackedGemm::RunBatch(gemms, x.data(), y.data(), rows), std::runtime_error);
}

TEST_F(PackedGemmTest, RefusesBadSizesAndBounds) {
  std::vector<float> w(4, 1.f);
  EXPECT_THROW(PackedGemm::Create(0, 4, w.data(), nullptr, {}), std::runtime_error);
  EXPECT_THROW(PackedGemm::Create(2, 2, w.data(), nullptr, {Epilogue::kClamp, 1.f, 0.f}),
               std::runtime_error);
}

// softmax(scale q k^T (causal: columns <= row)) v, in double, one head.
std::vector<double> AttentionReference(const float* q, const float* k, const float* v,
                                       int64_t sq, int64_t skv, int64_t d, int64_t dv,
                                       double scale, bool causal) {
  std::vector<double> o(sq * dv, 0.0), p(skv);
  for (int64_t r = 0; r < sq; ++r) {
    const int64_t allowed = causal ? std::min(skv, r + 1) : skv;
    double max = -INFINITY, sum = 0;
    for (int64_t c = 0; c < allowed; ++c) {
      double acc = 0;
      for (int64_t i = 0; i < d; ++i) acc += double(q[r * d + i]) * k[c * d + i];
      p[c] = acc * scale;
      max = std::max(max, p[c]);
    }
    for (int64_t c = 0; c < allowed; ++c) sum += (p[c] = std::exp(p[c] - max));
    for (int64_t c = 0; c < allowed; ++c) {
      for (int64_t j = 0; j < dv; ++j) o[r * dv + j] += p[c] / sum * v[c * dv + j];
    }
  }
  return o;
}

TEST_F(PackedGemmTest, AttentionAgainstReference) {
  // BERT's head (128 x 128 x 64), sizes off every block (rows past a 12-row
  // tile, columns past a panel, d and dv not multiples of 16), causal and not,
  // more heads than threads.
  struct Case {
    int64_t heads, sq, skv, d, dv;
  };
  for (Case c : {Case{2, 128, 128, 64, 64}, Case{3, 130, 129, 40, 24}, Case{5, 7, 33, 8, 17}})
    for (bool causal : {false, true}) {
      SCOPED_TRACE(testing::Message() << c.heads << "x" << c.sq << "x" << c.skv << "x" << c.d
                                      << "x" << c.dv << " causal=" << causal);
      auto q = Random(c.heads * c.sq * c.d, 21), k = Random(c.heads * c.skv * c.d, 22);
      auto v = Random(c.heads * c.skv * c.dv, 23);
      std::vector<float> o(c.heads * c.sq * c.dv, 12345.f);
      const float scale = 1.f / std::sqrt(float(c.d));
      omp_set_num_threads(2);
      Attention(c.heads, c.sq, c.skv, c.d, c.dv, q.data(), k.data(), v.data(), o.data(), scale,
                causal);
      for (int64_t h = 0; h < c.heads; ++h) {
        auto ref = AttentionReference(q.data() + h * c.sq * c.d, k.data() + h * c.skv * c.d,
                                      v.data() + h * c.skv * c.dv, c.sq, c.skv, c.d, c.dv,
                                      scale, causal);
        for (int64_t i = 0; i < c.sq * c.dv; ++i) {
          ASSERT_NEAR(o[h * c.sq * c.dv + i], ref[i], 1e-5) << "head " << h << " at " << i;
        }
      }
    }
}

TEST_F(PackedGemmTest, AttentionKeepsNaNInItsRow) {
  // A NaN in one query row makes that row's output NaN (its scores are all
  // NaN) and leaves the other rows finite, as eager's softmax does; a +inf
  // score makes its row NaN too (inf - inf).
  const int64_t sq = 20, skv = 20, d = 16;
  auto q = Random(sq * d, 31), k = Random(skv * d, 32), v = Random(skv * d, 33);
  q[3 * d + 5] = std::numeric_limits<float>::quiet_NaN();
  q[7 * d + 2] = std::numeric_limits<float>::infinity();
  std::vector<float> o(sq * d);
  Attention(1, sq, skv, d, d, q.data(), k.data(), v.data(), o.data(), 0.25f, false);
  for (int64_t r = 0; r < sq; ++r) {
    for (int64_t j = 0; j < d; ++j) {
      if (r == 3 || r == 7) {
        EXPECT_TRUE(std::isnan(o[r * d + j])) << r << "," << j;
      } else {
        EXPECT_TRUE(std::isfinite(o[r * d + j])) << r << "," << j;
      }
    }
  }
}

}  // namespace
