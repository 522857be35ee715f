// Why each TorchScript node was left outside every TVM group: a typed
// decision per node, recorded by the partitioner (partition/) as it decides,
// read by explain() (explain.h). Like Torch-TensorRT's NodeExecutorDecision.
//
// Each decision is also logged when it is made, through PyTorch's JIT log:
//   PYTORCH_JIT_LOG_LEVEL=">fuse_supported_ops" prints every rejection.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

namespace torch_tvm::frontend {

enum class Decision {
  kUnsupportedOp,      // no converter for the op
  kCheckFailed,        // a converter exists, its support check refused these arguments
  kNonTensorValue,     // scalar or shape arithmetic, left to PyTorch
  kControlFlow,        // prim::If / prim::Loop: their blocks are partitioned on their own
  kWrittenInPlace,     // touches a value written in place: a fresh TVM buffer would lose the write
  kUnsafeMove,         // merging it into a neighbour's group was not provably safe (AliasDb)
  kBelowMinGroupSize,  // its group was dissolved: fewer compute ops than min_group_size
  kViewsOnly,          // its group was dissolved: views only, free in eager
  kNoTensorOutput,     // its group was dissolved: it computed shape values only, no tensor
  kRuntimeValue,       // needs the value of a tensor computed at run time (aten::Int of data)
};

// "unsupported_op", "check_failed", ...: the name explain() prints.
const char* DecisionName(Decision decision);

struct NodeDecision {
  Decision decision;
  std::string reason;  // the human-readable cause, with the numbers that decided it
  c10::Symbol kind;    // the node's kind when decided (guards against a reused address)
};

using DecisionMap = std::unordered_map<const torch::jit::Node*, NodeDecision>;

// Keeps `decisions` for the nodes of `graph` that are still in it, for as
// long as the graph lives (it replaces what an earlier run recorded for it).
void RecordDecisions(const std::shared_ptr<torch::jit::Graph>& graph, DecisionMap decisions);

// The decision recorded for `node`, if its graph was partitioned and still lives.
std::optional<NodeDecision> FindDecision(const torch::jit::Node* node);

}  // namespace torch_tvm::frontend
