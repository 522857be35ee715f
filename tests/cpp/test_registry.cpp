// The converter registry: keys, lookups, support checks.
#include <gtest/gtest.h>
#include <torch/csrc/jit/ir/irparser.h>

#include <algorithm>

#include "convert/registry.h"
#include "frontend/torchscript/op_signature.h"

using namespace torch_tvm::convert;
using namespace torch_tvm::frontend;

namespace {
std::shared_ptr<torch::jit::Graph> Parse(const std::string& ir) {
  auto g = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, g.get());
  return g;
}
torch::jit::Node* FirstOf(const std::shared_ptr<torch::jit::Graph>& g, const char* kind) {
  for (auto* n : g->nodes()) {
    if (std::string(n->kind().toQualString()) == kind) return n;
  }
  return nullptr;
}
}  // namespace

TEST(Registry, CoversTheFoundationOps) {
  auto schemas = ConverterRegistry::Global().Schemas();
  for (const char* s : {"aten::add.Tensor", "aten::_convolution", "aten::batch_norm",
                        "aten::layer_norm", "aten::max_pool2d", "aten::linear", "aten::matmul",
                        "aten::cat", "aten::chunk", "aten::softmax.int", "aten::max.dim",
                        "aten::dropout", "aten::hardswish", "aten::conv_transpose2d.input",
                        "aten::exp", "aten::pow.Tensor_Scalar", "aten::softplus", "aten::mish"}) {
    EXPECT_NE(std::find(schemas.begin(), schemas.end(), s), schemas.end()) << s;
  }
}

TEST(Registry, DuplicateRegistrationIsRejected) {
  EXPECT_THROW(ConverterRegistry::Global().Register("aten::relu", [](ConvertContext&) {}),
               std::logic_error);
}

TEST(Registry, SchemaKeyIncludesOverload) {
  auto g = Parse(R"IR(
graph(%x : Tensor, %y : Tensor):
  %one : int = prim::Constant[value=1]()
  %z : Tensor = aten::add(%x, %y, %one)
  %r : Tensor = aten::relu(%z)
  return (%r))IR");
  EXPECT_EQ(SchemaKey(FirstOf(g, "aten::add")), "aten::add.Tensor");
  EXPECT_EQ(SchemaKey(FirstOf(g, "aten::relu")), "aten::relu");
  EXPECT_FALSE(UnsupportedReason(FirstOf(g, "aten::add")).has_value());
}

TEST(Registry, ReasonsNameTheProblem) {
  auto g = Parse(R"IR(
graph(%x : Tensor):
  %p : float = prim::Constant[value=0.5]()
  %train : bool = prim::Constant[value=1]()
  %d : Tensor = aten::dropout(%x, %p, %train)
  %e : Tensor = aten::erfinv(%d)
  %n : bool = aten::is_contiguous(%e)
  return (%n))IR");
  auto dropout = UnsupportedReason(FirstOf(g, "aten::dropout"));
  ASSERT_TRUE(dropout.has_value());
  EXPECT_NE(dropout->find("training"), std::string::npos);
  auto erfinv = UnsupportedReason(FirstOf(g, "aten::erfinv"));
  ASSERT_TRUE(erfinv.has_value());
  EXPECT_NE(erfinv->find("no converter for aten::erfinv"), std::string::npos);
  auto contiguous = UnsupportedReason(FirstOf(g, "aten::is_contiguous"));
  ASSERT_TRUE(contiguous.has_value());
  EXPECT_NE(contiguous->find("non-tensor"), std::string::npos);
}

TEST(Registry, IntegerPowWithTensorExponentIsRejectedByDtype) {
  auto g = Parse(R"IR(
graph(%xi : Long(2, 3), %yi : Long(2, 3), %xf : Float(2, 3), %y : Tensor):
  %two : int = prim::Constant[value=2]()
  %a : Tensor = aten::pow(%xi, %yi)
  %b : Tensor = aten::pow(%two, %yi)
  %c : Tensor = aten::pow(%xf, %yi)
  %d : Tensor = aten::pow(%xi, %y)
  %e : Tensor = aten::pow(%xi, %two)
  return (%a, %b, %c, %d, %e))IR");
  std::vector<torch::jit::Node*> pows;
  for (auto* n : g->nodes()) {
    if (n->kind() == c10::aten::pow) pows.push_back(n);
  }
  ASSERT_EQ(pows.size(), 5u);
  EXPECT_EQ(SchemaKey(pows[0]), "aten::pow.Tensor_Tensor");
  EXPECT_EQ(SchemaKey(pows[1]), "aten::pow.Scalar");
  EXPECT_EQ(SchemaKey(pows[4]), "aten::pow.Tensor_Scalar");
  for (int i : {0, 1}) {
    auto reason = UnsupportedReason(pows[i]);
    ASSERT_TRUE(reason.has_value()) << i;
    EXPECT_NE(reason->find("float-only"), std::string::npos) << *reason;
  }
  // A float operand, an unknown dtype (decided at conversion), a scalar exponent.
  for (int i : {2, 3, 4}) EXPECT_FALSE(UnsupportedReason(pows[i]).has_value()) << i;
}

// The table needs no graph: a front door that is not TorchScript builds the
// op-call view itself.
TEST(Registry, ChecksReadTheNeutralOpCallView) {
  OpSignature dropout{"aten::dropout",
                      {{c10::TensorType::get(), std::nullopt},
                       {c10::FloatType::get(), c10::IValue(0.5)},
                       {c10::BoolType::get(), c10::IValue(true)}},
                      {c10::TensorType::get()}};
  auto rejection = CheckSupport(dropout);
  ASSERT_TRUE(rejection.has_value());
  EXPECT_EQ(rejection->kind, Rejection::Kind::kCheckFailed);
  EXPECT_NE(rejection->message.find("training"), std::string::npos);

  dropout.args[2].constant = c10::IValue(false);
  EXPECT_FALSE(CheckSupport(dropout).has_value());
  dropout.args[2].constant = std::nullopt;  // known only at run time: checked at conversion
  EXPECT_FALSE(CheckSupport(dropout).has_value());

  OpSignature erfinv{"aten::erfinv", {{c10::TensorType::get(), std::nullopt}},
                     {c10::TensorType::get()}};
  ASSERT_TRUE(CheckSupport(erfinv).has_value());
  EXPECT_EQ(CheckSupport(erfinv)->kind, Rejection::Kind::kNoConverter);
  OpSignature is_contiguous{"aten::is_contiguous", {{c10::TensorType::get(), std::nullopt}},
                            {c10::BoolType::get()}};
  ASSERT_TRUE(CheckSupport(is_contiguous).has_value());
  EXPECT_EQ(CheckSupport(is_contiguous)->kind, Rejection::Kind::kNonTensor);
}

TEST(Registry, AttributesOfConstantChunkBecomeArguments) {
  auto g = Parse(R"IR(
graph(%x : Tensor):
  %a : Tensor, %b : Tensor = prim::ConstantChunk[chunks=2, dim=1](%x)
  return (%a, %b))IR");
  auto op = Signature(FirstOf(g, "prim::ConstantChunk"));
  ASSERT_EQ(op.args.size(), 3u);
  EXPECT_EQ(op.ConstantArg(1)->toInt(), 2);
  EXPECT_EQ(op.ConstantArg(2)->toInt(), 1);
  EXPECT_EQ(op.NumOutputs(), 2u);
}
