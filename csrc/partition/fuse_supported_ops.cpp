#include "partition/fuse_supported_ops.h"

#include <torch/csrc/jit/ir/alias_analysis.h>
#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/utils/subgraph_utils.h>

#include <atomic>

#include "common/group_symbols.h"
#include "frontend/torchscript/decisions.h"
#include "frontend/torchscript/op_signature.h"

namespace torch_tvm::partition {

using torch::jit::AliasDb;
using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;
using frontend::Decision;
namespace SubgraphUtils = torch::jit::SubgraphUtils;

namespace {

bool IsStructural(const Node* n) { return frontend::IsPlumbing(n); }

// A group whose compute is views only: eager returns them for free.
bool OnlyViews(const Node* group) {
  for (const Node* n : group->g(c10::attr::Subgraph)->nodes()) {
    if (!IsStructural(n) && !frontend::IsPureView(n)) return false;
  }
  return true;
}

// Whether a type is or contains a tensor (Tensor[], tuples, Optional).
bool HoldsTensors(const c10::TypePtr& type) {
  if (type->isSubtypeOf(*c10::TensorType::get())) return true;
  for (const auto& contained : type->containedTypes()) {
    if (HoldsTensors(contained)) return true;
  }
  return false;
}

// Whether a value can be known when the group compiles: constants, every
// non-tensor value (a group input of that kind is part of the spec key), and
// tensors computed only from those by convertible ops (NumToTensor(size) * 2,
// folded at conversion). A tensor from a graph input or a weight is data,
// known only at run time; so is one computed by an op TVM cannot take (it
// would enter the group as a run-time input).
bool KnownAtCompileTime(const Value* v, int depth = 0, const Node* group = nullptr) {
  // A list of tensors is known only if its elements are (the list a traced
  // torch.cat([tensor(k), shape_as_tensor(x)[0]]) is built from).
  if (!HoldsTensors(v->type())) return true;
  const Node* p = v->node();
  if (p->kind() == c10::prim::Constant || frontend::IsShapeQuery(p)) return true;
  if (depth > 32) return false;
  if (p->kind() == c10::prim::Param && group != nullptr) {
    // An input of a group's subgraph: the group node's input outside.
    return KnownAtCompileTime(group->inputs().at(v->offset()), depth + 1);
  }
  if (p->kind() == CompilationGroupKind()) {
    // Formed already (MarkGroups runs after fusion): look inside.
    const auto& sub = p->g(c10::attr::Subgraph);
    return KnownAtCompileTime(sub->outputs().at(v->offset()), depth + 1, p);
  }
  if (p->kind() == c10::prim::Param || p->kind() == c10::prim::GetAttr ||
      p->inputs().empty() || !p->blocks().empty() || frontend::CheckSupport(p)) {
    return false;
  }
  for (const Value* in : p->inputs()) {
    if (!KnownAtCompileTime(in, depth + 1, group)) return false;
  }
  return true;
}

// A 0-d integer tensor computed from sizes and constants only (a traced
// size wrapped by prim::NumToTensor, and int math on it). When one reaches a
// group from outside, the group is specialised on its value
// (InputBinding::kValue), so an aten::Int on it folds at compile time.
bool IsShapeScalar(const Value* v) {
  auto t = v->type()->cast<c10::TensorType>();
  if (!t || t->dim() != 0) return false;
  auto st = t->scalarType();
  return st && at::isIntegralType(*st, /*includeBool=*/false) && KnownAtCompileTime(v);
}

// Converters that need an input's value at compile time (not just its shape).
bool NeedsCompileTimeInput(const Node* n) {
  return frontend::SchemaKey(n) == "aten::Int.Tensor";
}

Decision DecisionOf(convert::Rejection::Kind kind) {
  switch (kind) {
    case convert::Rejection::Kind::kNoConverter: return Decision::kUnsupportedOp;
    case convert::Rejection::Kind::kNonTensor: return Decision::kNonTensorValue;
    case convert::Rejection::Kind::kCheckFailed: return Decision::kCheckFailed;
  }
  return Decision::kUnsupportedOp;
}

// Nodes in a group's subgraph (1 for a plain node).
size_t SubgraphSize(const Node* n) {
  if (n->kind() != CompilationGroupKind()) return 1;
  const auto nodes = n->g(c10::attr::Subgraph)->nodes();
  return static_cast<size_t>(std::distance(nodes.begin(), nodes.end()));
}

// A group none of whose outputs is a tensor (shape arithmetic through 0-d
// tensors: NumToTensor(numel) // 3 * 2 -> Int) gives TVM nothing to compute.
bool NoTensorOutput(const Node* group) {
  for (const Value* v : group->outputs()) {
    if (HoldsTensors(v->type())) return false;
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
    frontend::RecordDecisions(graph_, std::move(decisions_));
  }

 private:
  // Records why `n` stays outside (the latest decision wins: a node refused
  // by one merge may still join a group later, and then it is not asked).
  void Decide(const Node* n, Decision decision, std::string reason) {
    GRAPH_UPDATE("torch_tvm: ", frontend::SchemaKey(n), " left outside [",
                 frontend::DecisionName(decision), "]: ", reason);
    decisions_[n] = {decision, std::move(reason), n->kind()};
  }

  bool CanFuse(Node* n) {
    if (n->kind() == CompilationGroupKind()) return true;
    if (n->kind() == c10::prim::Constant) return false;
    if (!n->blocks().empty()) {
      Decide(n, Decision::kControlFlow,
             "control flow stays in PyTorch; its blocks are partitioned on their own");
      return false;
    }
    if (auto rejection = frontend::CheckSupport(n)) {
      if (!IsStructural(n)) Decide(n, DecisionOf(rejection->kind), rejection->message);
      return false;
    }
    if (NeedsCompileTimeInput(n) && !KnownAtCompileTime(n->input(0))) {
      // In a group it could never compile: every call would fall back.
      Decide(n, Decision::kRuntimeValue,
             frontend::SchemaKey(n) + " reads the value of a tensor computed at run time (%" +
                 n->input(0)->debugName() + "); it stays in PyTorch");
      return false;
    }
    // Moves are checked against mutations by AliasDb. What else can go wrong
    // is aliasing: a view's output shares its input's storage in PyTorch but
    // is a fresh buffer in TVM, so a write to either would not show through.
    // Only nodes whose outputs may alias their inputs need the writer check.
    if (!MayAliasInputs(n)) return true;
    for (const auto values : {n->inputs(), n->outputs()}) {
      for (const Value* v : values) {
        if (alias_db_->hasWriters(v)) {
          Decide(n, Decision::kWrittenInPlace,
                 "supported, but left outside: it may alias %" + v->debugName() +
                     ", which is written in place; TVM returns fresh buffers, so the write "
                     "would not show through");
          return false;
        }
      }
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
      // Merging a group clones its nodes into the other one. When the
      // producer is the larger group, the consumer moves into it instead, so
      // a long chain of groups (a detector's per-class loop, traced flat)
      // costs the size of the smaller side per merge, not the larger.
      if (producer->kind() == CompilationGroupKind() &&
          SubgraphSize(producer) > SubgraphSize(consumer) &&
          alias_db_->moveAfterTopologicallyValid(consumer, producer)) {
        SubgraphUtils::mergeNodeIntoSubgraphAndUpdateAliasing(consumer, producer, *alias_db_);
        return {producer->reverseIterator(), true};
      }
      Node* group = consumer;
      if (consumer->kind() != CompilationGroupKind()) {
        group = SubgraphUtils::createSingletonSubgraphAndUpdateAliasing(
            consumer, CompilationGroupKind(), *alias_db_);
      }
      if (!alias_db_->moveBeforeTopologicallyValid(producer, group)) {
        Decide(producer, Decision::kUnsafeMove,
               "supported, but left outside: merging it into the group of its consumer was "
               "not provably safe (AliasDb: the move would cross a mutation or a dependency)");
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
      if (n->kind() != CompilationGroupKind()) continue;
      int64_t size = GroupComputeSize(n);
      const bool small = size < min_group_size_, no_tensor = NoTensorOutput(n);
      if (!small && !no_tensor && !OnlyViews(n)) continue;
      Decision decision = no_tensor ? Decision::kNoTensorOutput
                          : small   ? Decision::kBelowMinGroupSize
                                    : Decision::kViewsOnly;
      std::string reason =
          no_tensor ? "supported, but left outside: its group computed shape values only (no "
                      "tensor output), which PyTorch evaluates without a kernel"
          : small   ? "supported, but left outside: its group had " + std::to_string(size) +
                        " compute op(s), below min_group_size=" + std::to_string(min_group_size_)
                    : "supported, but left outside: its group held only views, which eager "
                      "returns without a copy";
      // Unmerging clones the group's nodes back in its place: decide for those.
      Node* before = n->prev();
      SubgraphUtils::unmergeSubgraph(n);
      for (Node* m = before->next(); m != *it; m = m->next()) {
        if (m->kind() != c10::prim::Constant && !IsStructural(m)) Decide(m, decision, reason);
      }
    }
  }

  void MarkGroups(Block* block) {
    static std::atomic<int64_t> next_id{0};
    for (Node* n : block->nodes()) {
      for (Block* sub : n->blocks()) MarkGroups(sub);
      if (n->kind() != CompilationGroupKind()) continue;
      n->s_(GroupIdAttr(), "g" + std::to_string(next_id++));
      std::vector<int64_t> bound, by_value;
      for (size_t i = 0; i < n->inputs().size(); ++i) {
        const Value* in = n->inputs()[i];
        auto kind = in->node()->kind();
        if (kind == c10::prim::GetAttr || kind == c10::prim::Constant) {
          bound.push_back(i);
        } else if (IsShapeScalar(in)) {
          by_value.push_back(i);
        }
      }
      n->is_(BoundInputsAttr(), bound);
      n->is_(ValueInputsAttr(), by_value);
    }
  }

  std::shared_ptr<Graph> graph_;
  int64_t min_group_size_;
  std::unique_ptr<AliasDb> alias_db_;
  frontend::DecisionMap decisions_;
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
