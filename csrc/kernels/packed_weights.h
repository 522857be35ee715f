// What the extern kernels share: a prepacked conv or linear (PackedConv,
// PackedLinear) and the post-op it runs (PostOp, KeepNanEpilogue), the handle
// tables compiled code indexes them by, the packed-weight scopes that tie
// them to the build that made them, and PyTorch's oneDNN ops by name.
// Internal to csrc/kernels: onednn_kernels.cpp (convs) and linear_kernels.cpp
// (linears and GEMMs) include it; packed_weights.cpp defines it and
// registers the scope and counter globals:
//   torch_tvm.kernels.begin_packed_weight_scope() / end_packed_weight_scope() -> owner
//                                    weights prepacked in between live as long as owner
//   torch_tvm.kernels.begin_timing_scope()  the same, for candidates a kernel choice
//                                    times: their packing and calls are not counted
//   torch_tvm.kernels.count_winograd()  one Winograd conv run (its input transform)
//   torch_tvm.kernels.counters() -> {name: count}
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/function.h>
#include <tvm/ffi/string.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/dnnl/direct_conv.h"
#include "kernels/dnnl/direct_linear.h"
#include "kernels/gemm/packed_gemm.h"

namespace torch_tvm::kernels {

namespace ffi = tvm::ffi;

// A post-op run as eager's own ATen op on a kernel's output, in place, while
// it is still in cache, where oneDNN's post-op would not give eager's result:
// - relu / clamp: oneDNN's turn NaN into 0 or a bound (vmaxps/vminps), where
//   eager keeps it;
// - erf gelu (kGelu), on hosts where eager's vectorised gelu gives NaN for
//   +inf (ATen's AVX-512 gelu; EagerGeluInfIsNan) and oneDNN's gives inf.
struct KeepNanEpilogue {
  enum Kind { kNone, kRelu, kClamp, kGelu } kind = kNone;
  double lo = 0, hi = 0;
  void Apply(at::Tensor& y) const {
    if (kind == kRelu) {
      at::relu_(y);
    } else if (kind == kClamp) {
      at::clamp_(y, lo, hi);
    } else if (kind == kGelu) {
      at::gelu_(y);
    }
  }
  // The NaN-dropping oneDNN post-op it stands for, which a direct kernel may
  // still fuse on the calls a NanGuard admits (dnnl/dnnl_common.h).
  std::string FusedAttr() const { return kind == kRelu ? "relu" : "hardtanh"; }
  std::vector<double> FusedScalars() const {
    return kind == kClamp ? std::vector<double>{lo, hi} : std::vector<double>{};
  }
};

// A oneDNN unary post-op as the mkldnn ops spell it: attr ("none", "relu",
// "hardtanh", "gelu", ...), its scalars (hardtanh bounds) and algorithm
// (gelu: "none" or "tanh"; empty when unused).
struct PostOp {
  std::string attr = "none";
  std::vector<double> scalars;
  std::string algorithm;
  KeepNanEpilogue epilogue;  // when set, attr is "none"

  c10::IValue Scalars() const {
    c10::List<std::optional<c10::Scalar>> list;
    for (double v : scalars) list.push_back(c10::Scalar(v));
    return list;
  }
  // gelu in its erf form (algorithm "none" or unset), as the mkldnn ops spell it.
  static bool IsErfGelu(const std::string& attr, const std::string& algorithm) {
    return attr == "gelu" && (algorithm.empty() || algorithm == "none");
  }
  // Erf gelu, fused here or moved after oneDNN by MakePostOp (KeepNanEpilogue::kGelu).
  bool IsErfGelu() const {
    return epilogue.kind == KeepNanEpilogue::kGelu || IsErfGelu(attr, algorithm);
  }
  c10::IValue Algorithm() const {
    return algorithm.empty() ? c10::IValue() : c10::IValue(algorithm);
  }
  // The post-op fields of a direct kernel's ConvParams / LinearParams: a
  // NaN-keeping epilogue becomes its NaN-dropping post-op under a NanGuard.
  template <typename Params>
  void FillDirect(Params& p) const {
    p.algorithm = algorithm;
    if (epilogue.kind == KeepNanEpilogue::kGelu) {  // never fused: ATen's gelu after
      p.unary = "none";
      p.scalars.clear();
      p.algorithm.clear();
    } else if (epilogue.kind == KeepNanEpilogue::kNone) {
      p.unary = attr;
      p.scalars = scalars;
    } else {
      p.unary = epilogue.FusedAttr();
      p.scalars = epilogue.FusedScalars();
      p.nan_guard = true;
    }
  }
};

// "relu_keep_nan" / "hardtanh_keep_nan" become a KeepNanEpilogue; so does erf
// "gelu" where EagerGeluInfIsNan().
PostOp MakePostOp(const ffi::String& attr, const ffi::Array<double>& scalars,
                  const ffi::String& algorithm);

// Whether eager's gelu gives NaN for +inf here: ATen's vectorised gelu does on
// AVX-512 CPUs (torch 2.14 on a Zen 5; its scalar path gives inf) and gives
// inf on AVX2 ones, as oneDNN's fused gelu does everywhere. Asked of ATen
// itself, once.
bool EagerGeluInfIsNan();

// A prepacked conv with its constant arguments already boxed: the per-call
// stack is then a few refcount bumps, not list and string allocations.
struct PackedConv {
  // The direct oneDNN primitive (kernels/dnnl/direct_conv.h); null when the
  // conv runs through PyTorch's op instead (TORCH_TVM_CONV_KERNELS=aten).
  std::shared_ptr<dnnl_direct::Conv> direct;
  bool residual = false;  // packed for conv2d_add_nhwc(_inplace)
  at::Tensor weight;  // oneDNN blocked layout
  c10::IValue bias, padding, stride, dilation, groups;
  c10::IValue unary_attr, unary_scalars, unary_algorithm;  // for the plain conv
  c10::IValue after_add_unary;                             // None or the post-add attr
  KeepNanEpilogue epilogue;                                // after everything else
  std::vector<int64_t> input_nhwc;
  bool counted = true;  // false when packed in a timing scope
  // A guarded direct conv with a clamp to [lo, hi]: when it ran fused, its
  // output is finite and within max(|lo|, |hi|). Negative otherwise.
  float out_bound = -1.f;
};

struct PackedLinear {
  // The direct oneDNN inner product (kernels/dnnl/direct_linear.h); null when
  // the linear runs through PyTorch's mkldnn::_linear_pointwise instead.
  std::shared_ptr<dnnl_direct::Linear> direct;
  // torch_tvm's packed GEMM (kernels/gemm/packed_gemm.h), with relu / clamp
  // and erf gelu fused.
  std::shared_ptr<gemm::PackedGemm> sgemm;
  // A unary the packed GEMM leaves to ATen's in-place op after it ("none",
  // "gelu" (tanh), "sigmoid", "tanh", "swish"), and gelu's algorithm.
  std::string after_unary = "none", after_algorithm;
  // A batch of packed GEMMs (batched_gemm_prepack): Winograd's alpha^2 GEMMs.
  std::vector<std::shared_ptr<gemm::PackedGemm>> batch;
  at::Tensor weight;  // for PyTorch's op: oneDNN blocked layout
  c10::IValue bias, unary_attr, unary_scalars, unary_algorithm;
  KeepNanEpilogue epilogue;
  bool counted = true;  // false when packed in a timing scope
};

// Compiled executables refer to packed weights by integer handle. A handle
// stays valid until the build that created it releases it (see
// PackedWeightScope); a released slot is never reused, so a stale handle
// fails loudly instead of reaching another model's weights.
template <typename T>
class HandleTable {
 public:
  int64_t Add(T value) {
    std::lock_guard<std::mutex> lock(mu_);
    items_.push_back(std::make_shared<T>(std::move(value)));
    live_++;
    return static_cast<int64_t>(items_.size()) - 1;
  }
  std::shared_ptr<T> Get(int64_t handle) {
    std::lock_guard<std::mutex> lock(mu_);
    if (handle < 0 || handle >= static_cast<int64_t>(items_.size()) || !items_[handle]) {
      TVM_FFI_THROW(IndexError) << "torch_tvm: unknown or released packed-weight handle "
                                << handle;
    }
    return items_[handle];
  }
  void Release(int64_t handle) {
    std::lock_guard<std::mutex> lock(mu_);
    if (handle >= 0 && handle < static_cast<int64_t>(items_.size()) && items_[handle]) {
      items_[handle].reset();
      live_--;
    }
  }
  int64_t live() {
    std::lock_guard<std::mutex> lock(mu_);
    return live_;
  }

 private:
  std::mutex mu_;
  std::vector<std::shared_ptr<T>> items_;
  int64_t live_ = 0;
};

// Never destroyed: an executable freed during interpreter shutdown may still

// Never destroyed: an executable freed during interpreter shutdown may still
// release its handles after static destructors have run.
HandleTable<PackedConv>& Convs();
HandleTable<PackedLinear>& Linears();

// Whether weights packed now count: not inside a timing scope.
bool Counted();
// Hands a new handle to the innermost packed-weight scope of this thread.
void RecordConv(int64_t handle);
void RecordLinear(int64_t handle);

// PyTorch's oneDNN op mkldnn::<name>.<overload> (or onednn::), resolved once.
const c10::OperatorHandle& Op(const char* name, const char* overload);
at::Tensor CallOp(const c10::OperatorHandle& op, torch::jit::Stack stack);

// Counts a direct call whose NaN-dropping post-op was guarded.
void CountGuarded(bool guarded, bool fused);

}  // namespace torch_tvm::kernels
