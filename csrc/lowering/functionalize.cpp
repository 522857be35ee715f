#include "lowering/functionalize.h"

#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/remove_mutation.h>

namespace torch_tvm::lowering {

void Functionalize(const std::shared_ptr<torch::jit::Graph>& graph) {
  torch::jit::RemoveTensorMutation(graph);
  torch::jit::EliminateDeadCode(graph);
  GRAPH_DUMP("torch_tvm after Functionalize", graph);
}

}  // namespace torch_tvm::lowering
