// Groups maximal runs of convertible aten nodes into tvm::CompilationGroup
// nodes, inside every block (prim::If / prim::Loop bodies included).
//
// Producers are merged into their consumer's group only when AliasDb says the
// move is topologically valid, so no node crosses a mutation it could observe.
// Nodes touching values that are ever written in place are never grouped:
// TVM code returns fresh buffers, which would break aliasing the graph relies
// on. Groups smaller than `min_group_size` compute nodes, and groups of views
// only (convert::IsPureView), are dissolved again.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <cstdint>

namespace torch_tvm::partition {

void FuseSupportedOps(const std::shared_ptr<torch::jit::Graph>& graph, int64_t min_group_size);

// Number of compute nodes (not constants or list plumbing) in a group.
int64_t GroupComputeSize(const torch::jit::Node* group);

}  // namespace torch_tvm::partition
