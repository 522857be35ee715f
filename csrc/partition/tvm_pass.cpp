#include "partition/tvm_pass.h"

#include <torch/csrc/jit/passes/pass_manager.h>

#include <mutex>
#include <optional>

#include "common/options.h"
#include "lowering/functionalize.h"
#include "lowering/specialize_eval_mode.h"
#include "partition/fuse_supported_ops.h"

namespace torch_tvm::partition {

namespace {
std::mutex pass_mu;
std::optional<torch::jit::GraphPassNameType> pass_id;
}  // namespace

void RunTvmPass(std::shared_ptr<torch::jit::Graph>& graph) {
  Options options = GetOptions();
  lowering::SpecializeEvalMode(graph);
  lowering::Functionalize(graph);
  FuseSupportedOps(graph, options.min_group_size);
}

void InstallPostPass() {
  std::lock_guard<std::mutex> lock(pass_mu);
  if (pass_id) return;
  pass_id = torch::jit::registerPostPass([](std::shared_ptr<torch::jit::Graph>& graph) {
    // Plans built while enabled keep their groups after disable(); new plans
    // are untouched once disabled.
    if (GetOptions().enabled) RunTvmPass(graph);
  });
}

void RemovePostPass() {
  std::lock_guard<std::mutex> lock(pass_mu);
  if (!pass_id) return;
  torch::jit::clearPostPass(*pass_id);
  pass_id.reset();
}

}  // namespace torch_tvm::partition
