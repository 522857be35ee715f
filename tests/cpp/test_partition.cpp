// The partition pass on hand-written graphs.
#include <gtest/gtest.h>
#include <torch/csrc/jit/ir/irparser.h>

#include "common/group_symbols.h"
#include "frontend/torchscript/decisions.h"
#include "partition/fuse_supported_ops.h"

using torch_tvm::CompilationGroupKind;
using torch_tvm::partition::FuseSupportedOps;
using torch_tvm::partition::GroupComputeSize;
using torch_tvm::frontend::Decision;
using torch_tvm::frontend::FindDecision;

namespace {
std::shared_ptr<torch::jit::Graph> Parse(const std::string& ir) {
  auto g = std::make_shared<torch::jit::Graph>();
  torch::jit::parseIR(ir, g.get());
  return g;
}
std::vector<torch::jit::Node*> Groups(torch::jit::Block* b) {
  std::vector<torch::jit::Node*> out;
  for (auto* n : b->nodes()) {
    if (n->kind() == CompilationGroupKind()) out.push_back(n);
  }
  return out;
}
torch::jit::Node* First(torch::jit::Block* b, const char* kind) {
  for (auto* n : b->nodes()) {
    if (std::string(n->kind().toQualString()) == kind) return n;
  }
  return nullptr;
}
int Count(torch::jit::Block* b, const char* kind) {
  int c = 0;
  for (auto* n : b->nodes()) c += std::string(n->kind().toQualString()) == kind;
  return c;
}
const char* kChain = R"IR(
graph(%x : Tensor, %y : Tensor):
  %one : int = prim::Constant[value=1]()
  %a : Tensor = aten::add(%x, %y, %one)
  %b : Tensor = aten::relu(%a)
  %c : Tensor = aten::erfinv(%b)
  %d : Tensor = aten::sigmoid(%c)
  %e : Tensor = aten::tanh(%d)
  return (%e))IR";
}  // namespace

TEST(Partition, UnsupportedOpSplitsTheChain) {
  auto g = Parse(kChain);
  FuseSupportedOps(g, 2);
  auto groups = Groups(g->block());
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(GroupComputeSize(groups[0]), 2);
  EXPECT_EQ(GroupComputeSize(groups[1]), 2);
  EXPECT_EQ(Count(g->block(), "aten::erfinv"), 1);
}

TEST(Partition, MinGroupSizeDissolvesSmallGroups) {
  auto g = Parse(kChain);
  FuseSupportedOps(g, 3);
  EXPECT_TRUE(Groups(g->block()).empty());
  EXPECT_EQ(Count(g->block(), "aten::relu"), 1);
}

TEST(Partition, GroupsInsideBlocks) {
  auto g = Parse(R"IR(
graph(%x : Tensor, %c : bool):
  %r : Tensor = prim::If(%c)
    block0():
      %a : Tensor = aten::relu(%x)
      %b : Tensor = aten::sigmoid(%a)
      -> (%b)
    block1():
      %d : Tensor = aten::tanh(%x)
      %e : Tensor = aten::relu(%d)
      -> (%e)
  return (%r))IR");
  FuseSupportedOps(g, 2);
  torch::jit::Node* if_node = nullptr;
  for (auto* n : g->nodes()) {
    if (n->kind() == c10::prim::If) if_node = n;
  }
  ASSERT_NE(if_node, nullptr);
  EXPECT_EQ(Groups(if_node->blocks()[0]).size(), 1u);
  EXPECT_EQ(Groups(if_node->blocks()[1]).size(), 1u);
}

TEST(Partition, NeverGroupsAViewWhoseStorageIsWritten) {
  auto g = Parse(R"IR(
graph(%x : Tensor):
  %one : int = prim::Constant[value=1]()
  %m1 : int = prim::Constant[value=-1]()
  %shape : int[] = prim::ListConstruct(%m1)
  %a : Tensor = aten::relu(%x)
  %v : Tensor = aten::view(%a, %shape)
  %s : Tensor = aten::sigmoid(%v)
  %w : Tensor = aten::add_(%v, %s, %one)
  %d : Tensor = aten::tanh(%a)
  return (%w, %d))IR");
  FuseSupportedOps(g, 1);
  // In PyTorch %v shares %a's storage, so add_ on %v changes %a (and tanh's
  // input). A TVM group would return %v as a fresh buffer: the view must stay
  // outside, next to the in-place add_.
  EXPECT_EQ(Count(g->block(), "aten::view"), 1);
  EXPECT_EQ(Count(g->block(), "aten::add_"), 1);
  // Each is left outside with its own typed reason.
  auto view = FindDecision(First(g->block(), "aten::view"));
  ASSERT_TRUE(view.has_value());
  EXPECT_EQ(view->decision, Decision::kWrittenInPlace);
  auto add = FindDecision(First(g->block(), "aten::add_"));
  ASSERT_TRUE(add.has_value());
  EXPECT_EQ(add->decision, Decision::kUnsupportedOp);
}

TEST(Partition, GroupsAProducerWhoseFreshOutputIsLaterWritten) {
  auto g = Parse(R"IR(
graph(%x : Tensor):
  %one : int = prim::Constant[value=1]()
  %a : Tensor = aten::relu(%x)
  %b : Tensor = aten::sigmoid(%a)
  %c : Tensor = aten::add_(%a, %b, %one)
  return (%c))IR");
  FuseSupportedOps(g, 1);
  // relu and sigmoid write fresh buffers in PyTorch too; AliasDb keeps the
  // group before the add_ that writes relu's output.
  auto groups = Groups(g->block());
  ASSERT_EQ(groups.size(), 1u);
  EXPECT_EQ(GroupComputeSize(groups[0]), 2);
  EXPECT_EQ(Count(g->block(), "aten::add_"), 1);
  EXPECT_TRUE(groups[0]->isBefore(*std::prev(g->block()->nodes().end())));
}

// Every node left outside carries the typed reason the partitioner acted on.
TEST(Partition, DecisionsAreTypedPerNode) {
  auto g = Parse(kChain);
  FuseSupportedOps(g, 3);
  auto erfinv = FindDecision(First(g->block(), "aten::erfinv"));
  ASSERT_TRUE(erfinv.has_value());
  EXPECT_EQ(erfinv->decision, Decision::kUnsupportedOp);
  for (const char* kind : {"aten::add", "aten::relu", "aten::sigmoid", "aten::tanh"}) {
    auto d = FindDecision(First(g->block(), kind));
    ASSERT_TRUE(d.has_value()) << kind;
    EXPECT_EQ(d->decision, Decision::kBelowMinGroupSize) << kind;
    EXPECT_NE(d->reason.find("had 2 compute op(s), below min_group_size=3"), std::string::npos)
        << d->reason;
  }
}

TEST(Partition, DecisionsNameViewsOnlyGroups) {
  auto g = Parse(R"IR(
graph(%x : Tensor):
  %z : int = prim::Constant[value=0]()
  %q : Tensor = aten::unsqueeze(%x, %z)
  return (%q))IR");
  FuseSupportedOps(g, 1);
  auto unsqueeze = FindDecision(First(g->block(), "aten::unsqueeze"));
  ASSERT_TRUE(unsqueeze.has_value());
  EXPECT_EQ(unsqueeze->decision, Decision::kViewsOnly);
}

// Shape arithmetic through 0-d tensors with no tensor op to feed (swin_v2's
// `qkv_bias.numel() // 3` before numel converted) forms no group: TVM would
// have nothing to compute, and every call would fall back.
TEST(Partition, NoGroupWithoutATensorOutput) {
  auto g = Parse(R"IR(
graph(%n : int):
  %c2 : int = prim::Constant[value=2]()
  %c3 : int = prim::Constant[value=3]()
  %t : Tensor = prim::NumToTensor(%n)
  %q : Tensor = aten::floor_divide(%t, %c3)
  %m : Tensor = aten::mul(%q, %c2)
  %i : int = aten::Int(%m)
  %j : int = aten::Int(%q)
  return (%i, %j))IR");
  FuseSupportedOps(g, 1);
  EXPECT_TRUE(Groups(g->block()).empty()) << *g;
  auto* divide_node = First(g->block(), "aten::floor_divide");
  ASSERT_NE(divide_node, nullptr) << *g;
  auto divide = FindDecision(divide_node);
  ASSERT_TRUE(divide.has_value()) << *g;
  EXPECT_EQ(divide->decision, Decision::kNoTensorOutput);
}
