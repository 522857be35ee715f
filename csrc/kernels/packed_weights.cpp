// The shared state of the extern kernels (packed_weights.h): handle tables,
// packed-weight scopes, PyTorch's oneDNN ops by name, and the counters global.
#include "kernels/packed_weights.h"

#include <tvm/ffi/reflection/registry.h>

#include <cmath>
#include <limits>
#include <map>

#include "kernels/counters.h"

namespace torch_tvm::kernels {

PostOp MakePostOp(const ffi::String& attr, const ffi::Array<double>& scalars,
                  const ffi::String& algorithm) {
  PostOp p;
  p.attr = attr;
  p.scalars.assign(scalars.begin(), scalars.end());
  p.algorithm = algorithm;
  if (p.attr == "relu_keep_nan") {
    p.epilogue.kind = KeepNanEpilogue::kRelu;
  } else if (p.attr == "hardtanh_keep_nan") {
    if (p.scalars.size() != 2 || !(p.scalars[0] <= p.scalars[1])) {
      TVM_FFI_THROW(ValueError) << "torch_tvm: hardtanh_keep_nan needs bounds lo <= hi";
    }
    p.epilogue = {KeepNanEpilogue::kClamp, p.scalars[0], p.scalars[1]};
  } else if (PostOp::IsErfGelu(p.attr, p.algorithm) && EagerGeluInfIsNan()) {
    p.epilogue.kind = KeepNanEpilogue::kGelu;
    p.algorithm.clear();
  } else {
    return p;
  }
  p.attr = "none";
  p.scalars.clear();
  return p;
}

bool EagerGeluInfIsNan() {
  static const bool nan = [] {
    c10::InferenceMode guard;
    at::Tensor y = at::gelu(at::full({64}, std::numeric_limits<float>::infinity()));
    return std::isnan(y[0].item<float>());
  }();
  return nan;
}

HandleTable<PackedConv>& Convs() {
  static auto* table = new HandleTable<PackedConv>();
  return *table;
}
HandleTable<PackedLinear>& Linears() {
  static auto* table = new HandleTable<PackedLinear>();
  return *table;
}

namespace {

// The packed weights one build created. The build driver opens a scope on
// its thread, and closing it hands back an owner (an ffi::Function) that the
// compiled executable keeps: when the executable goes, its weights go.
struct PackedWeightScope {
  std::vector<int64_t> convs, linears;
  // A timing scope (begin_timing_scope): its weights are candidates that a
  // kernel choice times, so neither their packing nor their calls count.
  bool timing = false;
  ~PackedWeightScope() {
    for (int64_t h : convs) Convs().Release(h);
    for (int64_t h : linears) Linears().Release(h);
  }
};
// Scopes nest: a build that compiles candidate kernels to time them (the
// Winograd choice) opens its own scope inside the model's.
thread_local std::vector<std::shared_ptr<PackedWeightScope>> scopes;

}  // namespace

// Whether weights packed now count: not inside a timing scope.
bool Counted() { return scopes.empty() || !scopes.back()->timing; }

void RecordConv(int64_t handle) {
  if (!scopes.empty()) scopes.back()->convs.push_back(handle);
}
void RecordLinear(int64_t handle) {
  if (!scopes.empty()) scopes.back()->linears.push_back(handle);
}

const c10::OperatorHandle& Op(const char* name, const char* overload) {
  // Inductor's oneDNN ops may move from mkldnn:: to onednn::; accept both.
  static std::mutex mu;
  static std::map<std::string, c10::OperatorHandle> cache;
  std::lock_guard<std::mutex> lock(mu);
  std::string key = std::string(name) + "." + overload;
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  for (const char* ns : {"mkldnn::", "onednn::"}) {
    auto handle = c10::Dispatcher::singleton().findSchema({std::string(ns) + name, overload});
    if (handle) return cache.emplace(key, *handle).first->second;
  }
  TVM_FFI_THROW(RuntimeError) << "torch_tvm: PyTorch has no oneDNN op " << name;
  TVM_FFI_UNREACHABLE();
}

at::Tensor CallOp(const c10::OperatorHandle& op, torch::jit::Stack stack) {
  op.callBoxed(&stack);
  return stack.at(0).toTensor();
}

void CountGuarded(bool guarded, bool fused) {
  if (guarded) (fused ? GetCounters().nan_guard_fused : GetCounters().nan_guard_unfused)++;
}

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("torch_tvm.kernels.begin_packed_weight_scope",
           [] { scopes.push_back(std::make_shared<PackedWeightScope>()); })
      .def("torch_tvm.kernels.begin_timing_scope",
           [] {
             auto scope = std::make_shared<PackedWeightScope>();
             scope->timing = true;
             scopes.push_back(std::move(scope));
           })
      .def("torch_tvm.kernels.end_packed_weight_scope",
           [] {
             std::shared_ptr<PackedWeightScope> scope;
             if (!scopes.empty()) {
               scope = std::move(scopes.back());
               scopes.pop_back();
             }
             // Calling the owner returns how many weights it holds.
             return ffi::Function::FromTyped([scope]() -> int64_t {
               return scope ? static_cast<int64_t>(scope->convs.size() + scope->linears.size())
                            : 0;
             });
           })
      // Called once per run by the Winograd input transform (torch_tvm/_winograd_kernels.py).
      .def("torch_tvm.kernels.count_winograd", [] { GetCounters().winograd++; })
      .def("torch_tvm.kernels.counters", [] {
        auto& c = GetCounters();
        ffi::Map<ffi::String, int64_t> m;
        m.Set("conv2d_calls", c.conv2d.load());
        m.Set("conv2d_in_place_calls", c.conv2d_in_place.load());
        m.Set("conv2d_direct_calls", c.conv2d_direct.load());
        m.Set("linear_calls", c.linear.load());
        m.Set("linear_direct_calls", c.linear_direct.load());
        m.Set("linear_direct_refused", c.linear_direct_refused.load());
        m.Set("linear_sgemm_calls", c.linear_sgemm.load());
        m.Set("linear_sgemm_refused", c.linear_sgemm_refused.load());
        m.Set("batched_gemm_calls", c.batched_gemm.load());
        m.Set("nan_guard_fused_calls", c.nan_guard_fused.load());
        m.Set("nan_guard_unfused_calls", c.nan_guard_unfused.load());
        m.Set("nan_guard_trusted_calls", c.nan_guard_trusted.load());
        m.Set("matmul_calls", c.matmul.load());
        m.Set("prepacked_weights", c.prepacked.load());
        m.Set("layout_copies", c.layout_copies.load());
        m.Set("aten_softmax_calls", c.aten_softmax.load());
        m.Set("aten_layer_norm_calls", c.aten_layer_norm.load());
        m.Set("aten_group_norm_calls", c.aten_group_norm.load());
        m.Set("aten_reduce_calls", c.aten_reduce.load());
        m.Set("aten_convolution_calls", c.aten_convolution.load());
        m.Set("aten_max_pool3d_calls", c.aten_max_pool3d.load());
        m.Set("aten_sdpa_calls", c.aten_sdpa.load());
        m.Set("sdpa_packed_calls", c.sdpa_packed.load());
        m.Set("aten_lstm_calls", c.aten_lstm.load());
        m.Set("aten_gru_calls", c.aten_gru.load());
        m.Set("aten_embedding_bag_calls", c.aten_embedding_bag.load());
        m.Set("winograd_calls", c.winograd.load());
        m.Set("parallel_launches", c.parallel_launches.load());
        m.Set("parallel_max_threads", c.parallel_max_threads.load());
        m.Set("live_packed_weights", Convs().live() + Linears().live());
        return m;
      });
}

}  // namespace torch_tvm::kernels
