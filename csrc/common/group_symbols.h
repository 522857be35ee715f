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

}  // namespace torch_tvm
