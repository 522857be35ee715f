// Python bindings: thin wrappers only. Every behaviour lives in the stage
// folders; this file converts arguments and results.
#include <torch/extension.h>
#include <tvm/ffi/reflection/registry.h>

#include <mutex>
#include <unordered_map>

#include "common/options.h"
#include "compile/target.h"
#include "convert/registry.h"
#include "frontend/torchscript/explain.h"
#include "frontend/torchscript/to_relax.h"
#include "kernels/parallel_launch.h"
#include "lowering/functionalize.h"
#include "partition/tvm_pass.h"
#include "runtime/group_runner.h"

namespace py = pybind11;
using namespace torch_tvm;

namespace {

// pybind11 and tvm-ffi each own their Python object model; an IRModule built in
// C++ is handed to Python through this table and fetched with the tvm-ffi
// global "torch_tvm._take_handoff".
std::mutex handoff_mu;
std::unordered_map<int64_t, ObjectRef> handoff;
int64_t next_handoff = 0;

int64_t Handoff(ObjectRef obj) {
  std::lock_guard<std::mutex> lock(handoff_mu);
  handoff[++next_handoff] = std::move(obj);
  return next_handoff;
}

TVM_FFI_STATIC_INIT_BLOCK() {
  tvm::ffi::reflection::GlobalDef().def("torch_tvm._take_handoff", [](int64_t key) -> ObjectRef {
    std::lock_guard<std::mutex> lock(handoff_mu);
    auto it = handoff.find(key);
    if (it == handoff.end()) TVM_FFI_THROW(KeyError) << "no handoff object " << key;
    ObjectRef obj = it->second;
    handoff.erase(it);
    return obj;
  });
}

py::dict OptionsToDict(const Options& o) {
  py::dict d;
  d["enabled"] = o.enabled;
  d["opt_level"] = o.opt_level;
  d["strict"] = o.strict;
  d["require_full_compilation"] = o.require_full_compilation;
  d["target"] = o.target;
  d["num_threads"] = o.num_threads;
  d["cache_size"] = o.cache_size;
  d["recompile_limit"] = o.recompile_limit;
  d["min_group_size"] = o.min_group_size;
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "torch_tvm C++ core";

  m.def("get_options", [] { return OptionsToDict(GetOptions()); });
  m.def("set_options", [](bool enabled, int opt_level, bool strict, bool require_full_compilation,
                          std::string target, int num_threads, int64_t cache_size,
                          int64_t min_group_size, int64_t recompile_limit) {
    Options o;
    o.enabled = enabled;
    o.opt_level = opt_level;
    o.strict = strict;
    o.require_full_compilation = require_full_compilation;
    o.target = std::move(target);
    o.num_threads = num_threads;
    o.cache_size = cache_size;
    o.min_group_size = min_group_size;
    o.recompile_limit = recompile_limit;
    SetOptions(o);
    kernels::SetParallelBudget(num_threads);
  });
  m.def("install_pass", &partition::InstallPostPass);
  m.def("remove_pass", &partition::RemovePostPass);
  m.def("supported_ops", [] { return convert::ConverterRegistry::Global().Schemas(); });
  m.def("host_cpu", &compile::HostCpuName);
  m.def("host_vector_width", &compile::HostVectorWidth);

  m.def("run_tvm_pass", [](std::shared_ptr<torch::jit::Graph> graph) {
    partition::RunTvmPass(graph);
  });

  // The lowering pre-pass alone (tests give it a graph and compare).
  m.def("functionalize", [](std::shared_ptr<torch::jit::Graph> graph) {
    lowering::Functionalize(graph);
  });

  m.def("explain_graph", [](std::shared_ptr<torch::jit::Graph> graph) {
    auto report = frontend::ExplainGraph(graph);
    py::list outside, groups;
    for (const auto& g : report.groups) {
      py::dict d;
      d["id"] = g.id;
      d["ops"] = g.ops;
      groups.append(d);
    }
    for (const auto& o : report.outside) {
      py::dict d;
      d["op"] = o.op;
      d["decision"] = o.decision;
      d["reason"] = o.reason;
      outside.append(d);
    }
    py::dict d;
    d["outside"] = outside;
    d["groups"] = groups;
    d["eval_version"] = report.eval_version;
    return d;
  });

  m.def("group_stats", [] {
    py::list out;
    for (const auto& r : runtime::LiveRunners()) {
      const auto& s = r->stats();
      py::dict d;
      d["id"] = r->id();
      d["ops"] = r->op_names();
      d["calls"] = s.calls.load();
      d["cache_hits"] = s.cache_hits.load();
      d["cache_misses"] = s.cache_misses.load();
      d["compiles"] = s.compiles.load();
      d["compile_failures"] = s.compile_failures.load();
      d["over_recompile_limit"] = s.over_recompile_limit.load();
      d["fallback_calls"] = s.fallback_calls.load();
      d["input_copies"] = s.input_copies.load();
      d["evictions"] = s.evictions.load();
      d["compile_seconds"] = s.compile_ns.load() / 1e9;
      d["cached_entries"] = r->cached_entries();
      py::dict failures;
      for (const auto& kv : r->failures()) failures[py::str(kv.first)] = kv.second;
      d["failures"] = failures;
      out.append(d);
    }
    return out;
  });

  // Whole-graph conversion for to_relax(): every node must be convertible.
  m.def("graph_to_relax", [](std::shared_ptr<torch::jit::Graph> graph,
                             std::vector<at::Tensor> tensors) {
    return Handoff(frontend::GraphToRelax(graph, tensors));
  });
}
