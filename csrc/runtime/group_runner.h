// Runs one tvm::CompilationGroup: spec-keyed cache of compiled Relax VMs,
// with the PyTorch interpreter as the fallback for specs that fail.
//
// The hot path (cache hit) is: build the spec key, look it up under a mutex,
// wrap tensors through DLPack, call the VM, unwrap. No Python is involved.
#pragma once

#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/runtime/interpreter.h>

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/options.h"
#include "compile/compiler.h"
#include "frontend/torchscript/graph_converter.h"

namespace torch_tvm::runtime {

struct GroupStats {
  std::atomic<int64_t> calls{0};
  std::atomic<int64_t> cache_hits{0};
  std::atomic<int64_t> cache_misses{0};
  std::atomic<int64_t> compiles{0};
  std::atomic<int64_t> compile_failures{0};
  std::atomic<int64_t> fallback_calls{0};
  std::atomic<int64_t> input_copies{0};
  std::atomic<int64_t> evictions{0};
  std::atomic<int64_t> over_recompile_limit{0};  // calls of a new spec past the limit
  std::atomic<int64_t> compile_ns{0};
};

class GroupRunner {
 public:
  GroupRunner(std::string id, std::shared_ptr<torch::jit::Graph> subgraph,
              std::vector<InputBinding> bindings);

  // Pops the group's inputs from `stack` and pushes its outputs.
  void Run(torch::jit::Stack& stack);

  const std::string& id() const { return id_; }
  const std::vector<std::string>& op_names() const { return op_names_; }
  const GroupStats& stats() const { return stats_; }
  // Reasons of the specs that failed to compile, by spec key.
  std::map<std::string, std::string> failures() const;
  size_t cached_entries() const;

 private:
  struct Entry {
    std::shared_ptr<compile::CompiledFunction> fn;
    std::vector<frontend::ConvertedGraph::ParamSource> param_inputs;
    std::vector<bool> channels_last_outputs;
    std::vector<int64_t> output_arity;
    std::vector<c10::IValue> constant_outputs;
  };

  std::shared_ptr<Entry> Lookup(const std::string& key);
  std::shared_ptr<Entry> CompileEntry(const std::string& key,
                                      const std::vector<c10::IValue>& inputs,
                                      const Options& options);
  void RunCompiled(const Entry& entry, const std::vector<c10::IValue>& inputs,
                   torch::jit::Stack& stack);
  void RunFallback(std::vector<c10::IValue> inputs, torch::jit::Stack& stack);
  void RecordFailure(const std::string& key, const std::string& reason, const Options& options);

  std::string id_;
  std::shared_ptr<torch::jit::Graph> graph_;
  std::vector<InputBinding> bindings_;
  std::vector<std::string> op_names_;
  std::vector<bool> optional_list_outputs_;  // per graph output: a Tensor?[]
  torch::jit::Code fallback_code_;

  mutable std::mutex mu_;  // guards lru_, entries_, failures_
  std::mutex compile_mu_;  // one compilation at a time per group
  std::list<std::string> lru_;
  std::unordered_map<std::string, std::pair<std::shared_ptr<Entry>, std::list<std::string>::iterator>>
      entries_;
  std::map<std::string, std::string> failures_;
  // Specs this group has compiled or tried to, up to Options::recompile_limit.
  std::unordered_set<std::string> seen_specs_;
  GroupStats stats_;
};

// Every live runner, for explain() and stats().
void RegisterRunner(const std::shared_ptr<GroupRunner>& runner);
std::vector<std::shared_ptr<GroupRunner>> LiveRunners();

}  // namespace torch_tvm::runtime
