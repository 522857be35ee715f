// Names shared by the partition pass (which creates tvm::CompilationGroup
// nodes) and the runtime (which executes them), kept in a leaf so that
// neither stage includes the other.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace torch_tvm {

// Node kind of the groups the partition pass creates.
c10::Symbol CompilationGroupKind();
// Attribute names the partition pass sets on a group node.
c10::Symbol GroupIdAttr();
c10::Symbol BoundInputsAttr();
// Marks the prim::If with which lowering/specialize_eval_mode versions a graph
// on module.training: block 0 is the training version, block 1 the eval one.
c10::Symbol EvalVersionedAttr();

}  // namespace torch_tvm
