// explain()'s walk over an optimised TorchScript graph: its TVM groups with
// their ops, and every op left to PyTorch with its typed decision
// (decisions.h). A graph versioned by lowering/specialize_eval_mode is
// reported by its eval version (block 1 of the versioning If): the one
// inference runs.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <string>
#include <vector>

namespace torch_tvm::frontend {

struct GraphReport {
  struct Group {
    std::string id;
    std::vector<std::string> ops;
  };
  struct Outside {
    std::string op;
    std::string decision;  // DecisionName(), or "not_partitioned" for a node the pass never saw
    std::string reason;
  };
  std::vector<Group> groups;
  std::vector<Outside> outside;
  bool eval_version = false;
};

GraphReport ExplainGraph(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace torch_tvm::frontend
