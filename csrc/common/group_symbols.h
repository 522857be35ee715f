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
c10::Symbol ValueInputsAttr();

// How a group input enters the compiled code.
enum class InputBinding : uint8_t {
  kRuntime,  // a tensor parameter: the code is valid for any data of its spec
  kBound,    // a weight (GetAttr/constant), compiled in; keyed by storage and version
  kValue,    // a 0-d integer tensor of shape arithmetic (traced sizes wrapped by
             // NumToTensor) whose value the code is specialised on: keyed by value
};
// Marks the prim::If with which lowering/specialize_eval_mode versions a graph
// on module.training: block 0 is the training version, block 1 the eval one.
c10::Symbol EvalVersionedAttr();

}  // namespace torch_tvm
