// The TorchScript post pass torch_tvm installs while enabled: functionalize,
// then group supported nodes into tvm::CompilationGroup.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace torch_tvm::partition {

// Runs lowering and partitioning on `graph` with the current options.
void RunTvmPass(std::shared_ptr<torch::jit::Graph>& graph);

// Installs / removes the post pass (idempotent).
void InstallPostPass();
void RemovePostPass();

}  // namespace torch_tvm::partition
