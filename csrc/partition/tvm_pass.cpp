#include "partition/tvm_pass.h"

#include <torch/csrc/jit/passes/pass_manager.h>

#include <mutex>
#include <optional>

#include "common/options.h"
#include "frontend/torchscript/decisions.h"
#include "frontend/torchscript/op_signature.h"
#include "lowering/functionalize.h"
#include "lowering/specialize_eval_mode.h"
#include "partition/fuse_supported_ops.h"

namespace torch_tvm::partition {

namespace {
std::mutex pass_mu;
std::optional<torch::jit::GraphPassNameType> pass_id;

// "aten::foo [unsupported_op]: no converter for aten::foo" for every node left
// outside the groups because TVM cannot take it, nested blocks included.
void CollectNotCompilable(const torch::jit::Block* block, std::vector<std::string>& out) {
  for (const torch::jit::Node* n : block->nodes()) {
    for (const torch::jit::Block* sub : n->blocks()) CollectNotCompilable(sub, out);
    auto d = frontend::FindDecision(n);
    if (d && (d->decision == frontend::Decision::kUnsupportedOp ||
              d->decision == frontend::Decision::kCheckFailed)) {
      out.push_back(frontend::SchemaKey(n) + " [" + frontend::DecisionName(d->decision) +
                    "]: " + d->reason);
    }
  }
}
}  // namespace

void RunTvmPass(std::shared_ptr<torch::jit::Graph>& graph) {
  Options options = GetOptions();
  lowering::SpecializeEvalMode(graph);
  lowering::Functionalize(graph);
  FuseSupportedOps(graph, options.min_group_size);
  if (options.require_full_compilation) {
    std::vector<std::string> left;
    CollectNotCompilable(graph->block(), left);
    if (!left.empty()) {
      std::string msg = "torch_tvm: require_full_compilation=True, but " +
                        std::to_string(left.size()) + " op(s) cannot run in TVM:";
      for (const auto& l : left) msg += "\n  " + l;
      throw std::runtime_error(msg);
    }
  }
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
