// The direct oneDNN linear (csrc/kernels/dnnl/direct_linear.h) against a naive
// reference, with no torch or TVM in between.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "random_data.h"
#include "kernels/dnnl/direct_linear.h"

namespace {

using torch_tvm::kernels::dnnl_direct::Linear;
using torch_tvm::kernels::dnnl_direct::LinearParams;

double Unary(const LinearParams& p, double v) {
  if (p.unary == "relu") return v > 0 ? v : 0;
  if (p.unary == "tanh") return std::tanh(v);
  if (p.unary == "sigmoid") return 1 / (1 + std::exp(-v));
  if (p.unary == "gelu") return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  if (p.unary == "hardtanh") return std::fmin(std::fmax(v, p.scalars[0]), p.scalars[1]);
  return v;
}

LinearParams Params(int64_t rows, int64_t in, int64_t out, bool bias,
                    std::string unary = "none") {
  LinearParams p;
  p.rows = rows;
  p.in = in;
  p.out = out;
  p.has_bias = bias;
  p.unary = std::move(unary);
  return p;
}

void Check(const LinearParams& p) {
  auto x = Random(p.rows * p.in, 1);
  auto w = Random(p.out * p.in, 2);  // [out, in]
  auto b = Random(p.out, 3);
  auto lin = Linear::Create(p, w.data(), p.has_bias ? b.data() : nullptr);
  std::vector<float> y(p.rows * p.out, 0.f);
  lin->Run(x.data(), y.data());
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t o = 0; o < p.out; ++o) {
      double acc = p.has_bias ? b[o] : 0.0;
      for (int64_t k = 0; k < p.in; ++k) acc += double(x[r * p.in + k]) * w[o * p.in + k];
      double expected = Unary(p, acc);
      ASSERT_NEAR(y[r * p.out + o], expected, 1e-4 * (1 + std::fabs(expected)))
          << p.unary << " at row " << r << " column " << o;
    }
}

TEST(DirectLinear, AgainstReference) {
  Check(Params(1, 512, 1000, true));   // a classifier head
  Check(Params(3, 17, 5, false));      // sizes off the vector width
  Check(Params(197, 64, 48, true));    // many rows
}

TEST(DirectLinear, PostOpsAgainstReference) {
  Check(Params(7, 33, 19, true, "relu"));
  Check(Params(7, 33, 19, true, "gelu"));
  Check(Params(7, 33, 19, false, "tanh"));
  Check(Params(7, 33, 19, true, "sigmoid"));
  auto p = Params(4, 9, 11, true, "hardtanh");
  p.scalars = {-0.25, 0.5};
  Check(p);
}

// As DirectConv.NanGuardFusesOnlyAdmittedInputs: relu fused on admitted
// inputs only; a row with a NaN gets the linear alone (NaN across that row).
TEST(DirectLinear, NanGuardFusesOnlyAdmittedInputs) {
  auto p = Params(3, 16, 40, true, "relu");
  p.nan_guard = true;
  auto x = Random(3 * 16, 1);
  auto w = Random(40 * 16, 2);
  auto b = Random(40, 3);
  auto lin = Linear::Create(p, w.data(), b.data());
  ASSERT_TRUE(lin->guarded());
  std::vector<float> y(3 * 40);
  auto expect = [&](const std::vector<float>& xs, bool relu) {
    for (int64_t r = 0; r < 3; ++r)
      for (int64_t o = 0; o < 40; ++o) {
        double acc = b[o];
        for (int64_t k = 0; k < 16; ++k) acc += double(xs[r * 16 + k]) * w[o * 16 + k];
        float got = y[r * 40 + o];
        if (std::isnan(acc)) {
          ASSERT_TRUE(std::isnan(got)) << r << "," << o;
        } else {
          double e = relu && acc < 0 ? 0 : acc;
          ASSERT_NEAR(got, e, 1e-4 * (1 + std::fabs(e))) << r << "," << o;
        }
      }
  };
  EXPECT_TRUE(lin->Run(x.data(), y.data()));
  expect(x, true);
  x[16 + 5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(lin->Run(x.data(), y.data()));
  expect(x, false);
  // in >= 2 * out: the scan would cost more than the pass over the output.
  auto wide = Params(3, 64, 16, true, "relu");
  wide.nan_guard = true;
  EXPECT_FALSE(Linear::Create(wide, Random(64 * 16, 2).data(), b.data())->guarded());
}

TEST(DirectLinear, KeepsParamsAndNamesItsKernel) {
  auto lin = Linear::Create(Params(2, 3, 4, false), Random(12, 1).data(), nullptr);
  EXPECT_EQ(lin->params().rows, 2);
  EXPECT_EQ(lin->params().out, 4);
  EXPECT_FALSE(lin->implementation().empty());
}

TEST(DirectLinear, BadParametersThrow) {
  std::vector<float> w(12, 0.f);
  EXPECT_THROW(Linear::Create(Params(0, 3, 4, false), w.data(), nullptr), std::runtime_error);
  EXPECT_THROW(Linear::Create(Params(2, 3, 4, true), w.data(), nullptr), std::runtime_error);
  EXPECT_THROW(Linear::Create(Params(2, 3, 4, false, "mish"), w.data(), nullptr),
               std::runtime_error);
}

}  // namespace
