#include "partition/fuse_supported_ops.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/utils/subgraph_utils.h>

#include <atomic>

#include "common/group_symbols.h"
#include "convert/registry.h"

namespace torch_tvm::partition {

using torch::jit::AliasDb;
using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;
namespace SubgraphUtils = torch::jit::SubgraphUtils;

namespace {

bool IsStructural(const Node* n) { return convert::IsPlumbing(n); }

// A group whose compute is views only: eager returns them for free.
bool OnlyViews(const Node* group) {
  for (const Node* n : group->g(c10::attr::Subgraph)->nodes()) {
    if (!IsStructural(n) && !convert::IsPureView(n)) return false;
  }
  return true;
}

class Fuser {
 public:
  Fuser(std::shared_ptr<Graph> graph, int64_t min_group_size)
      : graph_(std::move(graph)), min_group_size_(min_group_size) {}

  void Run() {
    alias_db_ = std::make_unique<AliasDb>(graph_);
    FuseBlock(graph_->block());
    alias_db_.reset();
    DissolveSmallGroups(graph_->block());
    MarkGroups(graph_->block());
    torch::jit::EliminateDeadCode(graph_);
  }

 private:
  bool CanFuse(Node* n) const {
    if (n->kind() == CompilationGroupKind()) return true;
    if (n->kind() == c10::prim::Constant || !n->blocks().empty()) return false;
    if (convert::UnsupportedReason(n)) return false;
    // Moves are checked against mutations by AliasDb. What else can go wrong
    // is aliasing: a view's output shares its input's storage in PyTorch but
    // is a fresh buffer in TVM, so a write to either would not show through.
    // Only nodes whose outputs may alias their inputs need the writer check.
    if (!MayAliasInputs(n)) return true;
    for (const Value* v : n->inputs()) {
      if (alias_db_->hasWriters(v)) return false;
    }
    for (const Value* v : n->outputs()) {
      if (alias_db_->hasWriters(v)) return false;
    }
    return true;
  }

  static bool MayAliasInputs(const Node* n) {
    if (n->kind() == c10::prim::ListConstruct || n->kind() == c10::prim::ListUnpack) return true;
    const auto* schema = n->maybeSchema();
    if (!schema) return true;
    for (const auto& ret : schema->returns()) {
      if (ret.alias_info()) return true;
    }
    // Converters that return their input unchanged alias it too.
    auto kind = n->kind();
    return kind == c10::aten::dropout || kind == c10::aten::feature_dropout ||
           kind == c10::aten::contiguous;
  }

  void FuseBlock(Block* block) {
    for (Node* n : block->nodes()) {
      for (Block* sub : n->blocks()) FuseBlock(sub);
    }
    bool changed = true;
    while (changed) {
      changed = false;
      for (auto it = block->nodes().rbegin(); it != block->nodes().rend();) {
        bool merged = false;
        std::tie(it, merged) = ScanNode(*it);
        changed |= merged;
      }
    }
  }

  // Tries to pull one producer of `consumer` into its group. Returns where to
  // continue the reverse scan, and whether anything merged.
  std::pair<torch::jit::graph_node_list_iterator, bool> ScanNode(Node* consumer) {
    if (!CanFuse(consumer)) return {++consumer->reverseIterator(), false};
    // Visit inputs latest-producer first so each move stays valid.
    std::vector<Value*> inputs(consumer->inputs().begin(), consumer->inputs().end());
    std::sort(inputs.begin(), inputs.end(),
              [](Value* a, Value* b) { return b->node()->isBefore(a->node()); });
    for (Value* input : inputs) {
      Node* producer = input->node();
      if (producer->owningBlock() != consumer->owningBlock()) continue;
      if (producer->kind() == c10::prim::Param || !CanFuse(producer)) continue;
      Node* group = consumer;
      if (consumer->kind() != CompilationGroupKind()) {
        group = SubgraphUtils::createSingletonSubgraphAndUpdateAliasing(
            consumer, CompilationGroupKind(), *alias_db_);
      }
      if (!alias_db_->moveBeforeTopologicallyValid(producer, group)) {
        return {++group->reverseIterator(), false};
      }
      SubgraphUtils::mergeNodeIntoSubgraphAndUpdateAliasing(producer, group, *alias_db_);
      return {group->reverseIterator(), true};
    }
    if (consumer->kind() != CompilationGroupKind() && !IsStructural(consumer)) {
      // A lone supported node still forms a group; the size rule decides later.
      Node* group = SubgraphUtils::createSingletonSubgraphAndUpdateAliasing(
          consumer, CompilationGroupKind(), *alias_db_);
      return {++group->reverseIterator(), true};
    }
    return {++consumer->reverseIterator(), false};
  }

  void DissolveSmallGroups(Block* block) {
    for (auto it = block->nodes().begin(); it != block->nodes().end();) {
      Node* n = *it++;
      for (Block* sub : n->blocks()) DissolveSmallGroups(sub);
      if (n->kind() == CompilationGroupKind() &&
          (GroupComputeSize(n) < min_group_size_ || OnlyViews(n))) {
        SubgraphUtils::unmergeSubgraph(n);
      }
    }
  }

  void MarkGroups(Block* block) {
    static std::atomic<int64_t> next_id{0};
    for (Node* n : block->nodes()) {
      for (Block* sub : n->blocks()) MarkGroups(sub);
      if (n->kind() != CompilationGroupKind()) continue;
      n->s_(GroupIdAttr(), "g" + std::to_string(next_id++));
      std::vector<int64_t> bound;
      for (size_t i = 0; i < n->inputs().size(); ++i) {
        auto kind = n->inputs()[i]->node()->kind();
        if (kind == c10::prim::GetAttr || kind == c10::prim::Constant) bound.push_back(i);
      }
      n->is_(BoundInputsAttr(), bound);
    }
  }

  std::shared_ptr<Graph> graph_;
  int64_t min_group_size_;
  std::unique_ptr<AliasDb> alias_db_;
};

}  // namespace

int64_t GroupComputeSize(const Node* group) {
  int64_t size = 0;
  for (const Node* n : group->g(c10::attr::Subgraph)->nodes()) {
    if (!IsStructural(n)) ++size;
  }
  return size;
}

void FuseSupportedOps(const std::shared_ptr<Graph>& graph, int64_t min_group_size) {
  Fuser(graph, min_group_size).Run();
  GRAPH_DUMP("torch_tvm after FuseSupportedOps", graph);
}

}  // namespace torch_tvm::partition
