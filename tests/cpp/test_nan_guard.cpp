// The NanGuard of the direct oneDNN kernels (csrc/kernels/dnnl/dnnl_common.h):
// its bound from the weights, and which inputs it admits.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/dnnl/dnnl_common.h"

namespace {

using torch_tvm::kernels::dnnl_direct::detail::NanGuard;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(NanGuard, LimitKeepsTheWorstOutputUnderAQuarterOfFltMax) {
  // Rows {1, 2} and {3, -4}: the largest L1 norm is 7; the largest |bias| 6.
  std::vector<float> w{1, 2, 3, -4}, b{5, -6};
  NanGuard g = NanGuard::For(w.data(), 2, 2, b.data());
  double expected = (double(FLT_MAX) / 4 - 6) / 7;
  EXPECT_LE(double(g.limit), expected);
  EXPECT_GT(double(g.limit), expected * (1 - 1e-6));
  std::vector<float> x(1000, 0.5f);
  EXPECT_TRUE(g.Admits(x.data(), x.size()));
  x[999] = -g.limit;
  EXPECT_TRUE(g.Admits(x.data(), x.size()));
  for (float bad : {kNaN, kInf, -kInf, std::nextafter(g.limit, kInf)}) {
    x[777] = bad;  // not on a vector boundary
    EXPECT_FALSE(g.Admits(x.data(), x.size())) << bad;
  }
}

TEST(NanGuard, NonFiniteWeightsOrBiasAdmitNothing) {
  std::vector<float> x(16, 0.f);
  for (float bad : {kNaN, kInf}) {
    std::vector<float> w{1, bad, 3, 4}, b{0, 0};
    EXPECT_FALSE(NanGuard::For(w.data(), 2, 2, b.data()).Admits(x.data(), x.size())) << bad;
    std::vector<float> w_ok{1, 2, 3, 4}, b_bad{0, bad};
    EXPECT_FALSE(NanGuard::For(w_ok.data(), 2, 2, b_bad.data()).Admits(x.data(), x.size()))
        << bad;
  }
}

TEST(NanGuard, ZeroWeightsStillRefuseInfinity) {
  // 0 * inf is a NaN: an all-zero conv is finite only for finite inputs.
  std::vector<float> w(6, 0.f);
  NanGuard g = NanGuard::For(w.data(), 3, 2, nullptr);
  std::vector<float> x{FLT_MAX, -FLT_MAX, 0};
  EXPECT_TRUE(g.Admits(x.data(), x.size()));
  x[2] = kInf;
  EXPECT_FALSE(g.Admits(x.data(), x.size()));
}

}  // namespace
