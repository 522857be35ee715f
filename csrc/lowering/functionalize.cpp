#include "lowering/functionalize.h"

#include "lowering/scatter_view_mutations.h"

#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/remove_mutation.h>

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

}  // namespace

void Functionalize(const std::shared_ptr<torch::jit::Graph>& graph) {
  RemoveInferenceDropoutInPlace(graph->block());
  ScatterViewMutations(graph);
  torch::jit::RemoveTensorMutation(graph);
  torch::jit::EliminateDeadCode(graph);
  GRAPH_DUMP("torch_tvm after Functionalize", graph);
}

}  // namespace torch_tvm::lowering
