#include "frontend/torchscript/decisions.h"

#include <mutex>
#include <unordered_set>
#include <vector>

namespace torch_tvm::frontend {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;

const char* DecisionName(Decision decision) {
  switch (decision) {
    case Decision::kUnsupportedOp: return "unsupported_op";
    case Decision::kCheckFailed: return "check_failed";
    case Decision::kNonTensorValue: return "non_tensor_value";
    case Decision::kControlFlow: return "control_flow";
    case Decision::kWrittenInPlace: return "written_in_place";
    case Decision::kUnsafeMove: return "unsafe_move";
    case Decision::kBelowMinGroupSize: return "below_min_group_size";
    case Decision::kViewsOnly: return "views_only";
    case Decision::kNoTensorOutput: return "no_tensor_output";
    case Decision::kRuntimeValue: return "needs_runtime_value";
  }
  return "unknown";
}

namespace {

struct GraphDecisions {
  std::weak_ptr<Graph> graph;
  DecisionMap decisions;
};

std::mutex& StoreMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<GraphDecisions>& Store() {
  static std::vector<GraphDecisions> store;
  return store;
}

void CollectNodes(Block* block, std::unordered_set<const Node*>& out) {
  for (Node* n : block->nodes()) {
    out.insert(n);
    for (Block* sub : n->blocks()) CollectNodes(sub, out);
  }
}

}  // namespace

void RecordDecisions(const std::shared_ptr<Graph>& graph, DecisionMap decisions) {
  // Nodes merged into a group were destroyed: drop their entries, so a later
  // node at the same address never inherits them.
  std::unordered_set<const Node*> live;
  CollectNodes(graph->block(), live);
  for (auto it = decisions.begin(); it != decisions.end();) {
    it = live.count(it->first) ? std::next(it) : decisions.erase(it);
  }
  std::lock_guard<std::mutex> lock(StoreMutex());
  auto& store = Store();
  std::erase_if(store, [&](const GraphDecisions& g) {
    auto locked = g.graph.lock();
    return !locked || locked == graph;
  });
  store.push_back({graph, std::move(decisions)});
}

std::optional<NodeDecision> FindDecision(const Node* node) {
  std::lock_guard<std::mutex> lock(StoreMutex());
  for (const auto& g : Store()) {
    auto graph = g.graph.lock();
    if (!graph || graph.get() != node->owningGraph()) continue;
    auto it = g.decisions.find(node);
    if (it != g.decisions.end() && it->second.kind == node->kind()) return it->second;
  }
  return std::nullopt;
}

}  // namespace torch_tvm::frontend
