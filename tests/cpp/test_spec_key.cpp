// The per-call cache key: equal specs give equal keys, every difference that
// changes the compiled code gives a different one.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "runtime/spec_key.h"

using torch_tvm::InputBinding;
using torch_tvm::runtime::SpecKey;

namespace {
std::string Key(std::vector<c10::IValue> inputs, std::vector<InputBinding> bindings = {}) {
  bindings.resize(inputs.size(), InputBinding::kRuntime);
  std::string why;
  auto key = SpecKey(inputs, bindings, "opt=3", &why);
  EXPECT_TRUE(key.has_value()) << why;
  return key.value_or("");
}
}  // namespace

TEST(SpecKey, EqualSpecsShareAKey) {
  EXPECT_EQ(Key({torch::randn({2, 3}), int64_t{4}}), Key({torch::zeros({2, 3}), int64_t{4}}));
}

TEST(SpecKey, EveryDifferenceChangesTheKey) {
  auto x = torch::randn({2, 3, 4, 5});
  std::vector<std::string> keys = {
      Key({x}),
      Key({torch::randn({2, 3, 4, 6})}),
      Key({x.to(torch::kDouble)}),
      Key({x.contiguous(at::MemoryFormat::ChannelsLast)}),
      Key({x.transpose(2, 3)}),
      Key({x, 1.5}),
      Key({x, std::nextafter(1.5, 2.0)}),
      Key({x, int64_t{-7}}),
      Key({x, true}),
      Key({x, c10::IValue()}),
      Key({x, std::string("ab")}),
      Key({x, c10::List<int64_t>({1, 2})}),
      Key({x, c10::Device("cpu")}),
  };
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(std::adjacent_find(keys.begin(), keys.end()), keys.end());
}

TEST(SpecKey, ABoundWeightIsKeyedByStorageAndVersion) {
  auto w = torch::randn({4});
  const std::vector<InputBinding> bound = {InputBinding::kBound};
  std::string before = Key({w}, bound);
  EXPECT_EQ(before, Key({w}, bound));
  EXPECT_NE(before, Key({w.clone()}, bound));
  w.add_(1);
  EXPECT_NE(before, Key({w}, bound));
  EXPECT_EQ(Key({w}), Key({w.clone()}));  // unbound: the values do not matter
}

TEST(SpecKey, AnUnsupportedTypeHasNoKey) {
  std::string why;
  std::vector<c10::IValue> inputs = {c10::ivalue::Tuple::create({int64_t{1}})};
  EXPECT_FALSE(SpecKey(inputs, {InputBinding::kRuntime}, "", &why).has_value());
  EXPECT_NE(why.find("unsupported type"), std::string::npos);
}

TEST(SpecKey, AShapeScalarIsKeyedByItsValue) {
  const std::vector<InputBinding> by_value = {InputBinding::kValue};
  auto seven = torch::scalar_tensor(7, torch::kLong);
  EXPECT_EQ(Key({seven}, by_value), Key({seven.clone()}, by_value));
  EXPECT_NE(Key({seven}, by_value), Key({torch::scalar_tensor(8, torch::kLong)}, by_value));
  std::string why;
  std::vector<c10::IValue> not_a_scalar = {torch::ones({2}, torch::kLong)};
  EXPECT_FALSE(SpecKey(not_a_scalar, by_value, "", &why).has_value());
  EXPECT_NE(why.find("0-d integer tensor"), std::string::npos);
}
