#include "runtime/group_runner.h"

#include <c10/util/Exception.h>

#include <chrono>

#include "common/dlpack_bridge.h"
#include "frontend/torchscript/graph_converter.h"
#include "frontend/torchscript/op_signature.h"
#include "runtime/spec_key.h"

namespace torch_tvm::runtime {

using torch::jit::Stack;

namespace {
constexpr size_t kMaxRememberedFailures = 256;
constexpr const char* kOverRecompileLimit = "<over recompile_limit>";
}

GroupRunner::GroupRunner(std::string id, std::shared_ptr<torch::jit::Graph> subgraph,
                         std::vector<InputBinding> bindings)
    : id_(std::move(id)),
      graph_(std::move(subgraph)),
      bindings_(std::move(bindings)),
      fallback_code_(graph_, "tvm_group_fallback_" + id_) {
  bindings_.resize(graph_->inputs().size(), InputBinding::kRuntime);
  for (const auto* node : graph_->nodes()) {
    if (node->kind() != c10::prim::Constant) op_names_.push_back(frontend::SchemaKey(node));
  }
  for (const auto* out : graph_->outputs()) {
    auto list = out->type()->cast<c10::ListType>();
    optional_list_outputs_.push_back(list && list->getElementType()->cast<c10::OptionalType>());
  }
}

std::map<std::string, std::string> GroupRunner::failures() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failures_;
}

size_t GroupRunner::cached_entries() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

std::shared_ptr<GroupRunner::Entry> GroupRunner::Lookup(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second.second);
  return it->second.first;
}

void GroupRunner::RecordFailure(const std::string& key, const std::string& reason,
                                const Options& options) {
  stats_.compile_failures++;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (failures_.size() >= kMaxRememberedFailures) failures_.erase(failures_.begin());
    failures_[key] = reason;
  }
  std::string message = "torch_tvm: group " + id_ + " falls back to PyTorch: " + reason;
  if (options.strict) TORCH_CHECK(false, message);
  TORCH_WARN(message);
}

std::shared_ptr<GroupRunner::Entry> GroupRunner::CompileEntry(
    const std::string& key, const std::vector<c10::IValue>& inputs, const Options& options) {
  std::lock_guard<std::mutex> compile_lock(compile_mu_);
  if (auto hit = Lookup(key)) return hit;  // another thread compiled it meanwhile
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto failed = failures_.find(key);
    if (failed != failures_.end()) {
      TORCH_CHECK(!options.strict, "torch_tvm: group ", id_, " falls back to PyTorch: ",
                  failed->second);
      return nullptr;
    }
  }
  stats_.cache_misses++;
  if (!seen_specs_.count(key)) {
    if (static_cast<int64_t>(seen_specs_.size()) >= options.recompile_limit) {
      std::string message =
          "torch_tvm: group " + id_ + " compiled " + std::to_string(seen_specs_.size()) +
          " input specs (recompile_limit=" + std::to_string(options.recompile_limit) +
          "); new specs run in PyTorch. Its input shapes change from call to call, as "
          "data-dependent shapes do";
      TORCH_CHECK(!options.strict, message);
      if (stats_.over_recompile_limit++ == 0) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          failures_[kOverRecompileLimit] = message;
        }
        TORCH_WARN(message);
      }
      return nullptr;
    }
    seen_specs_.insert(key);
  }
  auto start = std::chrono::steady_clock::now();
  auto entry = std::make_shared<Entry>();
  try {
    auto converted = frontend::ConvertGraph(*graph_, inputs, bindings_);
    entry->fn = compile::CompileRelax(converted.ir_module, options);
    entry->param_inputs = std::move(converted.param_inputs);
    entry->channels_last_outputs = std::move(converted.channels_last_outputs);
    entry->output_arity = std::move(converted.output_arity);
    entry->constant_outputs = std::move(converted.constant_outputs);
  } catch (const std::exception& e) {
    RecordFailure(key, e.what(), options);
    return nullptr;
  }
  stats_.compiles++;
  stats_.compile_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::steady_clock::now() - start)
                           .count();
  std::lock_guard<std::mutex> lock(mu_);
  lru_.push_front(key);
  entries_[key] = {entry, lru_.begin()};
  int64_t capacity = std::max<int64_t>(1, options.cache_size);
  while (static_cast<int64_t>(entries_.size()) > capacity) {
    entries_.erase(lru_.back());
    lru_.pop_back();
    stats_.evictions++;
  }
  return entry;
}

void GroupRunner::RunCompiled(const Entry& entry, const std::vector<c10::IValue>& inputs,
                              Stack& stack) {
  std::vector<tvm::ffi::Tensor> args;
  args.reserve(entry.param_inputs.size());
  for (const auto& src : entry.param_inputs) {
    at::Tensor t = src.element == frontend::ConvertedGraph::kWholeInput
                       ? inputs[src.input].toTensor()
                       : inputs[src.input].toListRef().at(src.element).toTensor();
    // The spec key guarantees a channels-last input here: its NHWC view is
    // contiguous, no copy.
    if (src.channels_last) t = t.permute(kToNhwc);
    if (NeedsCopyForTvm(t)) {
      // A fresh allocation is contiguous and 64-byte aligned.
      t = t.clone(at::MemoryFormat::Contiguous);
      stats_.input_copies++;
    }
    args.push_back(ToTvm(t));
  }
  std::vector<tvm::ffi::Tensor> flat = entry.fn->Run(args);
  auto output = [&](size_t i) {
    at::Tensor t = FromTvm(flat.at(i));
    return entry.channels_last_outputs.at(i) ? t.permute(kToNchw) : t;
  };
  torch::jit::drop(stack, inputs.size());
  size_t pos = 0, constant_pos = 0, index = 0;
  for (int64_t arity : entry.output_arity) {
    const bool optional_list = optional_list_outputs_.at(index++);
    if (arity == frontend::ConvertedGraph::kConstantOutput) {
      const c10::IValue& v = entry.constant_outputs.at(constant_pos++);
      // A constant tensor is handed out fresh, so callers may mutate it.
      torch::jit::push(stack, v.isTensor() ? c10::IValue(v.toTensor().clone()) : v);
    } else if (arity < 0) {
      torch::jit::push(stack, output(pos++));
    } else if (optional_list) {  // Tensor?[] (advanced indexing's indices)
      c10::List<std::optional<at::Tensor>> list;
      for (int64_t k = 0; k < arity; ++k) list.push_back(output(pos++));
      torch::jit::push(stack, std::move(list));
    } else {
      c10::List<at::Tensor> list;
      for (int64_t k = 0; k < arity; ++k) list.push_back(output(pos++));
      torch::jit::push(stack, std::move(list));
    }
  }
}

void GroupRunner::RunFallback(std::vector<c10::IValue> inputs, Stack& stack) {
  stats_.fallback_calls++;
  torch::jit::drop(stack, inputs.size());
  Stack local(std::move(inputs));
  torch::jit::InterpreterState(fallback_code_).run(local);
  for (auto& v : local) stack.push_back(std::move(v));
}

void GroupRunner::Run(Stack& stack) {
  stats_.calls++;
  const size_t n = graph_->inputs().size();
  std::vector<c10::IValue> inputs(stack.end() - n, stack.end());
  std::shared_ptr<const Settings> settings = CurrentSettings();
  const Options& options = settings->options;

  std::string why;
  auto key = SpecKey(inputs, bindings_, settings->key, &why);
  if (!key) {
    RecordFailure("<unkeyable>", why, options);
    return RunFallback(std::move(inputs), stack);
  }
  std::shared_ptr<Entry> entry = Lookup(*key);
  if (entry) {
    stats_.cache_hits++;
  } else {
    entry = CompileEntry(*key, inputs, options);
    if (!entry) return RunFallback(std::move(inputs), stack);
  }
  try {
    RunCompiled(*entry, inputs, stack);
  } catch (const std::exception& e) {
    // The call failed inside TVM code or an extern kernel. Run the same
    // inputs through PyTorch: if PyTorch raises too, the inputs were bad (an
    // out-of-range index, say) and its error is the one the user should see;
    // the compiled code stays. If PyTorch succeeds, the compiled code is
    // wrong for this spec: drop it and never use it again.
    std::string reason = std::string("run failed: ") + e.what();
    RunFallback(inputs, stack);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = entries_.find(*key);
      if (it != entries_.end()) {
        lru_.erase(it->second.second);
        entries_.erase(it);
      }
    }
    RecordFailure(*key, reason, options);
  }
}

namespace {
std::mutex& RunnersMutex() {
  static std::mutex mu;
  return mu;
}
std::vector<std::weak_ptr<GroupRunner>>& Runners() {
  static std::vector<std::weak_ptr<GroupRunner>> runners;
  return runners;
}
}  // namespace

void RegisterRunner(const std::shared_ptr<GroupRunner>& runner) {
  std::lock_guard<std::mutex> lock(RunnersMutex());
  auto& runners = Runners();
  runners.erase(std::remove_if(runners.begin(), runners.end(),
                               [](const auto& w) { return w.expired(); }),
                runners.end());
  runners.push_back(runner);
}

std::vector<std::shared_ptr<GroupRunner>> LiveRunners() {
  std::lock_guard<std::mutex> lock(RunnersMutex());
  std::vector<std::shared_ptr<GroupRunner>> out;
  for (const auto& w : Runners()) {
    if (auto r = w.lock()) out.push_back(r);
  }
  return out;
}

}  // namespace torch_tvm::runtime
