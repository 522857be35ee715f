#include "lowering/functionalize.h"

#include "lowering/scatter_view_mutations.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/remove_mutation.h>

#include <string>
#include <unordered_set>

namespace torch_tvm::lowering {

namespace {

// dropout_(x, p, train=False) and its feature/alpha variants do nothing and
// return x itself: drop the node, exactly. With train unknown or true they
// stay (random, and in place).
void RemoveInferenceDropoutInPlace(torch::jit::Block* block) {
  for (auto it = block->nodes().begin(); it != block->nodes().end();) {
    torch::jit::Node* n = *it++;
    for (torch::jit::Block* sub : n->blocks()) RemoveInferenceDropoutInPlace(sub);
    auto kind = n->kind();
    if (kind != c10::aten::dropout_ && kind != c10::aten::feature_dropout_ &&
        kind != c10::aten::alpha_dropout_ && kind != c10::aten::feature_alpha_dropout_) {
      continue;
    }
    if (n->inputs().size() != 3) continue;
    auto train = torch::jit::toIValue(n->inputs()[2]);
    if (!train || !train->isBool() || train->toBool()) continue;
    GRAPH_UPDATE("torch_tvm: removing inference-mode ", n->kind().toQualString());
    n->output()->replaceAllUsesWith(n->inputs()[0]);
    n->destroy();
  }
}

// Unary in-place ops whose functional form keeps self's dtype for a float
// self (their other arguments are scalars), so that `op(v)` is `op_(v)` but
// for the write.
bool IsUnaryInPlace(const torch::jit::Node* n) {
  static const std::unordered_set<std::string> kOps = {
      "aten::relu_",       "aten::leaky_relu_", "aten::hardtanh_",  "aten::elu_",
      "aten::selu_",       "aten::celu_",       "aten::silu_",      "aten::mish_",
      "aten::hardswish_",  "aten::hardsigmoid_", "aten::sigmoid_",  "aten::tanh_",
      "aten::threshold_",  "aten::clamp_",      "aten::clamp_min_", "aten::clamp_max_"};
  return kOps.count(n->kind().toQualString()) > 0;
}

bool IsFloatTensor(const torch::jit::Value* v) {
  auto t = v->type()->cast<c10::TensorType>();
  return t && t->scalarType() && c10::isFloatingType(*t->scalarType());
}

// An aten op whose schema gives every return fresh memory: alias analysis
// from the schema, and no alias annotation on any return (a view such as
// slice returns `Tensor(a)`). AliasDb is coarser here: it reports batch_norm's
// output as possibly aliasing the module's running statistics.
bool ReturnsFreshTensors(const torch::jit::Node* n) {
  if (!n->kind().is_aten() || n->maybeOperator() == nullptr) return false;
  if (n->getOperator().aliasAnalysisKind() != c10::AliasAnalysisKind::FROM_SCHEMA) return false;
  for (const auto& ret : n->schema().returns()) {
    if (ret.alias_info() != nullptr) return false;
  }
  return true;
}

// `y = op_(v)` where nothing but this op reads v, and v is fresh memory (its
// producer's schema returns fresh tensors, and it is not a graph input): no
// other value can observe the write, so `y = op(v)` is the same program.
// RemoveTensorMutation leaves these when y is then split or chunked (a list
// of views of y: CSPDarkNet's `act_(bn(x)).split(...)`).
void FunctionalizeSoleUseUnaries(const std::shared_ptr<torch::jit::Graph>& graph) {
  for (auto it = graph->nodes().begin(); it != graph->nodes().end();) {
    torch::jit::Node* n = *it++;
    if (!IsUnaryInPlace(n) || n->outputs().size() != 1) continue;
    torch::jit::Value* v = n->inputs()[0];
    torch::jit::Node* producer = v->node();
    if (v->uses().size() != 1 || !IsFloatTensor(v) || !IsFloatTensor(n->output()) ||
        producer->kind() == c10::prim::Param || producer->hasSideEffects() ||
        !producer->blocks().empty() || producer->owningBlock() != n->owningBlock() ||
        !ReturnsFreshTensors(producer)) {
      continue;
    }
    std::string name = n->kind().toQualString();
    auto functional = c10::Symbol::fromQualString(name.substr(0, name.size() - 1));
    torch::jit::WithInsertPoint guard(n);
    torch::jit::Node* f = graph->insertNode(graph->create(functional, n->inputs()));
    if (!f->maybeSchema()) {
      f->destroy();
      continue;
    }
    f->output()->setType(n->output()->type());
    f->copyMetadata(n);
    GRAPH_UPDATE("torch_tvm: ", name, " -> functional (its input has no other reader)");
    n->output()->replaceAllUsesWith(f->output());
    n->destroy();
  }
}

}  // namespace

void Functionalize(const std::shared_ptr<torch::jit::Graph>& graph) {
  RemoveInferenceDropoutInPlace(graph->block());
  ScatterViewMutations(graph);
  torch::jit::RemoveTensorMutation(graph);
  FunctionalizeSoleUseUnaries(graph);
  torch::jit::EliminateDeadCode(graph);
  GRAPH_DUMP("torch_tvm after Functionalize", graph);
}

}  // namespace torch_tvm::lowering
