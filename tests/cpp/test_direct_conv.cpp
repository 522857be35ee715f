// The direct oneDNN convolution (csrc/kernels/dnnl/direct_conv.h) against a
// naive reference convolution, with no torch or TVM in between.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "random_data.h"
#include "kernels/dnnl/direct_conv.h"

namespace {

using torch_tvm::kernels::dnnl_direct::Conv;
using torch_tvm::kernels::dnnl_direct::ConvParams;

// NHWC input, OIHW weights, NHWC output; the output is added to when `sum`.
void Reference(const ConvParams& p, const std::vector<float>& x, const std::vector<float>& w,
               const float* bias, const std::vector<int64_t>& out, std::vector<float>& y) {
  const auto& in = p.input_nhwc;
  int64_t oc = p.weight_oihw[0], icg = p.weight_oihw[1], kh = p.weight_oihw[2],
          kw = p.weight_oihw[3], ocg = oc / p.groups;
  for (int64_t n = 0; n < out[0]; ++n)
    for (int64_t oy = 0; oy < out[1]; ++oy)
      for (int64_t ox = 0; ox < out[2]; ++ox)
        for (int64_t o = 0; o < oc; ++o) {
          double acc = bias ? bias[o] : 0.0;
          int64_t g = o / ocg;
          for (int64_t c = 0; c < icg; ++c)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                int64_t iy = oy * p.stride[0] - p.padding[0] + ky * p.dilation[0];
                int64_t ix = ox * p.stride[1] - p.padding[1] + kx * p.dilation[1];
                if (iy < 0 || iy >= in[1] || ix < 0 || ix >= in[2]) continue;
                acc += double(x[((n * in[1] + iy) * in[2] + ix) * in[3] + g * icg + c]) *
                       w[((o * icg + c) * kh + ky) * kw + kx];
              }
          float& dst = y[((n * out[1] + oy) * out[2] + ox) * oc + o];
          dst = float(acc) + (p.sum ? dst : 0.f);
          if (p.unary == "tanh") dst = std::tanh(dst);
        }
}

void Check(ConvParams p) {
  const auto& in = p.input_nhwc;
  auto x = Random(in[0] * in[1] * in[2] * in[3], 1);
  auto w = Random(p.weight_oihw[0] * p.weight_oihw[1] * p.weight_oihw[2] * p.weight_oihw[3], 2);
  auto b = Random(p.weight_oihw[0], 3);
  auto conv = Conv::Create(p, w.data(), p.has_bias ? b.data() : nullptr);
  const auto& out = conv->output_nhwc();
  auto y = Random(out[0] * out[1] * out[2] * out[3], 4);  // the residual when p.sum
  auto expected = y;
  Reference(p, x, w, p.has_bias ? b.data() : nullptr, out, expected);
  conv->Run(x.data(), y.data());
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], expected[i], 1e-4 * (1 + std::fabs(expected[i]))) << "at " << i;
  }
}

ConvParams Params(std::vector<int64_t> in, std::vector<int64_t> w, int64_t stride, int64_t pad,
                  int64_t dilation, int64_t groups, bool bias) {
  ConvParams p;
  p.input_nhwc = std::move(in);
  p.weight_oihw = std::move(w);
  p.stride = {stride, stride};
  p.padding = {pad, pad};
  p.dilation = {dilation, dilation};
  p.groups = groups;
  p.has_bias = bias;
  return p;
}

TEST(DirectConv, DenseAgainstReference) {
  Check(Params({1, 9, 9, 7}, {13, 7, 3, 3}, 1, 1, 1, 1, true));
  Check(Params({3, 11, 10, 8}, {16, 8, 3, 3}, 2, 0, 1, 1, false));
  Check(Params({2, 12, 12, 5}, {6, 5, 3, 3}, 1, 2, 2, 1, true));
  Check(Params({1, 6, 6, 24}, {40, 24, 1, 1}, 1, 0, 1, 1, true));
}

TEST(DirectConv, DepthwiseAgainstReference) {
  Check(Params({1, 10, 10, 13}, {13, 1, 3, 3}, 1, 1, 1, 13, true));
  Check(Params({3, 9, 9, 16}, {16, 1, 3, 3}, 2, 1, 1, 16, false));
}

TEST(DirectConv, SumThenUnaryAgainstReference) {
  auto p = Params({2, 8, 8, 8}, {8, 8, 3, 3}, 1, 1, 1, 1, true);
  p.sum = true;
  p.unary = "tanh";
  Check(p);
}

TEST(DirectConv, OutputShape) {
  auto conv = Conv::Create(Params({1, 10, 7, 4}, {6, 4, 3, 3}, 2, 1, 1, 1, false),
                           Random(6 * 4 * 9, 1).data(), nullptr);
  EXPECT_EQ(conv->output_nhwc(), (std::vector<int64_t>{1, 5, 4, 6}));
  EXPECT_FALSE(conv->implementation().empty());
}

TEST(DirectConv, BadParametersThrow) {
  std::vector<float> w(4 * 3 * 9, 0.f);
  // Input channels do not match the weight's.
  EXPECT_THROW(Conv::Create(Params({1, 5, 5, 5}, {4, 3, 3, 3}, 1, 0, 1, 1, false), w.data(),
                            nullptr),
               std::runtime_error);
  // A kernel larger than the padded input.
  EXPECT_THROW(Conv::Create(Params({1, 2, 2, 3}, {4, 3, 3, 3}, 1, 0, 1, 1, false), w.data(),
                            nullptr),
               std::runtime_error);
  auto p = Params({1, 5, 5, 3}, {4, 3, 3, 3}, 1, 0, 1, 1, false);
  p.unary = "mish";
  EXPECT_THROW(Conv::Create(p, w.data(), nullptr), std::runtime_error);
}

// A NaN-dropping clip runs fused only on inputs the NanGuard admits; on the
// others Run reports that the caller still owes it, and the output is the conv
// alone, NaN and infinities included.
TEST(DirectConv, NanGuardFusesOnlyAdmittedInputs) {
  auto p = Params({1, 6, 6, 8}, {24, 8, 1, 1}, 1, 0, 1, 1, true);
  p.unary = "hardtanh";
  p.scalars = {0.0, 0.5};
  p.nan_guard = true;
  auto x = Random(6 * 6 * 8, 1);
  auto w = Random(24 * 8, 2);
  auto b = Random(24, 3);
  auto conv = Conv::Create(p, w.data(), b.data());
  ASSERT_TRUE(conv->guarded());
  const auto& out = conv->output_nhwc();
  auto plain = p;
  plain.unary = "none";
  std::vector<float> expected(6 * 6 * 24), y(6 * 6 * 24);
  Reference(plain, x, w, b.data(), out, expected);
  EXPECT_TRUE(conv->Run(x.data(), y.data()));
  for (size_t i = 0; i < y.size(); ++i) {
    ASSERT_NEAR(y[i], std::fmin(std::fmax(expected[i], 0.f), 0.5f), 1e-5) << "at " << i;
  }
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    3e38f}) {
    auto xb = x;
    xb[8 * 7 + 2] = bad;  // pixel (0, 7), channel 2
    Reference(plain, xb, w, b.data(), out, expected);
    EXPECT_FALSE(conv->Run(xb.data(), y.data())) << bad;
    int non_finite = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      if (!std::isfinite(expected[i])) {
        ++non_finite;
        ASSERT_TRUE(std::isnan(expected[i]) ? std::isnan(y[i]) : y[i] == expected[i]) << i;
      } else {
        ASSERT_NEAR(y[i], expected[i], 1e-4 * (1 + std::fabs(expected[i]))) << "at " << i;
      }
    }
    if (!(bad == 3e38f)) EXPECT_EQ(non_finite, 24) << bad;  // every channel of that pixel
  }
}

// An input more than half the output's size is not worth scanning: the unary
// runs fused only when the caller vouches for the input (trusted). A conv that
// adds into its output is never guarded.
TEST(DirectConv, NanGuardWithoutScanFusesOnlyTrustedInputs) {
  auto dw = Params({1, 12, 12, 8}, {8, 1, 3, 3}, 2, 1, 1, 8, true);  // input 4x the output
  auto same = Params({1, 6, 6, 8}, {8, 1, 3, 3}, 1, 1, 1, 8, true);  // input as large
  auto sum = Params({1, 6, 6, 8}, {16, 8, 1, 1}, 1, 0, 1, 1, true);  // would scan, but adds
  sum.sum = true;
  for (auto p : {dw, same, sum}) {
    p.unary = "relu";
    p.nan_guard = true;
    auto x = Random(p.input_nhwc[1] * p.input_nhwc[2] * p.input_nhwc[3], 1);
    auto w = Random(p.weight_oihw[0] * p.weight_oihw[1] * p.weight_oihw[2] * p.weight_oihw[3], 2);
    auto b = Random(p.weight_oihw[0], 3);
    auto conv = Conv::Create(p, w.data(), b.data());
    EXPECT_EQ(conv->guarded(), !p.sum);
    const auto& out = conv->output_nhwc();
    std::vector<float> y0 = Random(out[1] * out[2] * out[3], 4), expected = y0;
    auto plain = p;
    plain.unary = "none";
    Reference(plain, x, w, b.data(), out, expected);
    for (bool trusted : {false, true}) {
      auto y = y0;
      const bool fused = conv->Run(x.data(), y.data(), trusted);
      EXPECT_EQ(fused, trusted && !p.sum);
      int negative = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        float e = fused ? std::fmax(expected[i], 0.f) : expected[i];
        negative += e < 0;
        ASSERT_NEAR(y[i], e, 1e-4 * (1 + std::fabs(e))) << "at " << i;
      }
      EXPECT_EQ(negative > 0, !fused);  // the unary was really left out, or applied
    }
  }
}

}  // namespace
