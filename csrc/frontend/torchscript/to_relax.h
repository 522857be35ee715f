// to_relax(): a whole TorchScript graph, every node convertible, as one Relax
// IRModule (for inspection and for tests of the Relax passes).
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <vector>

#include "common/ffi_call.h"

namespace torch_tvm::frontend {

// Inlines calls, drops an unused module `self`, functionalizes, and converts.
// Raises c10::Error listing every node TVM cannot take.
ObjectRef GraphToRelax(const std::shared_ptr<torch::jit::Graph>& graph,
                       const std::vector<at::Tensor>& inputs);

}  // namespace torch_tvm::frontend
