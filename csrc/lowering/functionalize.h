// Rewrites in-place tensor ops (add_, relu_, ...) into their functional forms
// where AliasDb proves no other value can observe the mutation, and in-place
// unary activations whose input has no other reader and is fresh memory by
// its producer's schema. What is left in place stays out of TVM groups,
// because TVM code writes fresh buffers.
// In-place dropout with train=False (a no-op returning its input) is removed.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace torch_tvm::lowering {

void Functionalize(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace torch_tvm::lowering
