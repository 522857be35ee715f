#include "frontend/torchscript/to_relax.h"

#include <torch/csrc/jit/passes/inliner.h>

#include "frontend/torchscript/graph_converter.h"
#include "frontend/torchscript/op_signature.h"
#include "lowering/functionalize.h"

namespace torch_tvm::frontend {

ObjectRef GraphToRelax(const std::shared_ptr<torch::jit::Graph>& graph,
                       const std::vector<at::Tensor>& tensors) {
  auto g = graph->copy();
  torch::jit::Inline(*g);
  if (!g->inputs().empty() && g->inputs()[0]->type()->cast<c10::ClassType>()) {
    TORCH_CHECK(!g->inputs()[0]->hasUses(),
                "to_relax: the module still reads attributes; freeze it first");
    g->eraseInput(0);
  }
  lowering::Functionalize(g);
  std::vector<std::string> problems;
  for (const auto* n : g->nodes()) {
    if (n->kind() == c10::prim::Constant) continue;
    if (!n->blocks().empty()) {
      problems.push_back(std::string(n->kind().toQualString()) + ": control flow");
    } else if (auto why = UnsupportedReason(n)) {
      problems.push_back(*why);
    }
  }
  if (!problems.empty()) {
    std::string msg = "to_relax: the graph has nodes TVM cannot take:";
    for (const auto& p : problems) msg += "\n  " + p;
    TORCH_CHECK(false, msg);
  }
  std::vector<c10::IValue> inputs(tensors.begin(), tensors.end());
  return ConvertGraph(*g, inputs, std::vector<InputBinding>(inputs.size(), InputBinding::kRuntime))
      .ir_module;
}

}  // namespace torch_tvm::frontend
