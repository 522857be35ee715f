// Registers the jit operator for tvm::CompilationGroup. The creator runs once
// per node when an execution plan is built; the Operation it returns owns a
// GroupRunner, so the compiled cache lives as long as that plan.
#include "common/group_symbols.h"

#include <torch/csrc/jit/runtime/custom_operator.h>

#include "runtime/group_runner.h"

namespace torch_tvm::runtime {

using torch::jit::Node;
using torch::jit::Operation;

namespace {

Operation CreateGroupOperation(const Node* node) {
  auto subgraph = node->g(c10::attr::Subgraph);
  std::vector<InputBinding> bindings(subgraph->inputs().size(), InputBinding::kRuntime);
  for (auto [attr, binding] : {std::pair{BoundInputsAttr(), InputBinding::kBound},
                               std::pair{ValueInputsAttr(), InputBinding::kValue}}) {
    if (!node->hasAttribute(attr)) continue;
    for (int64_t i : node->is(attr)) bindings.at(i) = binding;
  }
  std::string id = node->hasAttribute(GroupIdAttr()) ? node->s(GroupIdAttr()) : "group";
  auto runner = std::make_shared<GroupRunner>(id, subgraph->copy(), bindings);
  RegisterRunner(runner);
  return [runner](torch::jit::Stack& stack) { runner->Run(stack); };
}

torch::jit::RegisterOperators register_group_op({torch::jit::Operator(
    CompilationGroupKind(), CreateGroupOperation, c10::AliasAnalysisKind::PURE_FUNCTION)});

}  // namespace
}  // namespace torch_tvm::runtime
