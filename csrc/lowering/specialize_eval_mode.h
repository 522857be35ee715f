// Versions an unfrozen scripted module's graph on its `training` flags.
//
// nn.Module code branches on `self.training` (BatchNorm's `if self.training:`
// updates num_batches_tracked in place). Those prim::If nodes write module
// state, so no group can form across them, and an unfrozen
// torch.jit.script(resnet) gets one group per op and no speedup.
//
// The pass reads every `training` flag the graph uses once, up front, and
// wraps the whole graph in `if any(flags): <original> else: <copy with every
// flag False>`, then constant-propagates the copy. The training path is the
// untouched original, so train() still behaves as in PyTorch; the eval path
// has no branches left and groups like a frozen module.
//
// Only applies when every flag is read from a chain of module attributes
// starting at the graph's `self` input and the graph never sets an attribute.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace torch_tvm::lowering {

// True when the graph was versioned. Works on a copy: `graph` is replaced
// only when the rewrite completed.
bool SpecializeEvalMode(std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace torch_tvm::lowering
