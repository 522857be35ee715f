// Extern kernels that TVM-compiled graphs call for their heavy ops: 2d
// convolution through a oneDNN primitive built once per conv
// (kernels/dnnl/direct_conv.h), and linear through a oneDNN inner product
// built once (kernels/dnnl/direct_linear.h), through torch_tvm's own packed
// GEMM (kernels/gemm/packed_gemm.h) or through the oneDNN inside PyTorch,
// reached with the dispatcher (the mkldnn:: ops Inductor uses), whichever
// torch_tvm/_linear_choice.py measured fastest for the shape. All
// share PyTorch's OpenMP pool. TORCH_TVM_CONV_KERNELS=aten sends convs to
// PyTorch's mkldnn::_convolution_pointwise too, as before the direct path
// existed.
//
// Weights are prepacked once, at compile time, into oneDNN's blocked layout;
// the compiled code refers to a packed weight by an integer handle. Tensors
// cross as NHWC so that oneDNN never reorders activations per call: a
// channels-last NCHW at::Tensor and a contiguous NHWC ffi::Tensor are the same
// bytes, related by a permute.
//
// Registered tvm-ffi globals (called from the Relax VM by name):
//   torch_tvm.kernels.conv2d_prepack(w_ohwi, bias|None, padding, stride, dilation,
//                                    groups, input_nhwc_shape, unary, scalars, algorithm,
//                                    residual) -> handle (residual: for conv2d_add_nhwc*)
//   torch_tvm.kernels.conv2d_nhwc(x_nhwc, handle) -> y_nhwc
//   torch_tvm.kernels.conv2d_nhwc_trusting(x_nhwc, handle) -> y_nhwc, for an x that a
//                                    clamp-bounded conv wrote: its NaN-dropping clamp
//                                    or relu may then run fused without a scan
//   torch_tvm.kernels.conv2d_can_trust(producer, consumer) -> bool (see above)
//   torch_tvm.kernels.conv2d_add_nhwc(x_nhwc, other_nhwc, handle) -> y_nhwc
//   torch_tvm.kernels.conv2d_add_nhwc_inplace(x_nhwc, other_nhwc, handle)
//                                    -> y_nhwc, written into other's buffer
//   torch_tvm.kernels.linear_prepack(w_in_out, bias|None, batch, unary, scalars,
//                                    algorithm, kernel) -> handle (kernel: "onednn" for
//                                    the direct inner product, "sgemm" for the packed
//                                    GEMM, "aten" for PyTorch's op; a kernel that cannot
//                                    take the linear packs it for "aten";
//                                    torch_tvm/_linear_choice.py measures which)
//   torch_tvm.kernels.linear(x, handle) -> y
//   torch_tvm.kernels.linear_kernel(handle) -> "onednn" | "sgemm" | "aten" (the one that runs)
//   torch_tvm.kernels.matmul(a, b) -> a @ b
//   torch_tvm.kernels.packed_gemm_supported() -> whether this CPU runs the packed GEMM
//   torch_tvm.kernels.batched_gemm_prepack(u [batch, in, out]) -> handle
//   torch_tvm.kernels.batched_gemm(v [batch, rows, in], handle) -> v @ u, on the packed GEMM
//                                    (the Winograd convolutions' alpha^2 GEMMs)
//   torch_tvm.kernels.embedding(weight, indices) -> rows (bounds-checked)
//   torch_tvm.kernels.begin_packed_weight_scope() / end_packed_weight_scope() -> owner
//                                    weights prepacked in between live as long as owner
//   torch_tvm.kernels.begin_timing_scope()  the same, for candidates a kernel choice
//                                    times: their packing and calls are not counted
//   torch_tvm.kernels.counters() -> {name: count}
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <tvm/ffi/reflection/registry.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/dlpack_bridge.h"
#include "kernels/counters.h"
#include "kernels/dnnl/direct_conv.h"
#include "kernels/dnnl/direct_linear.h"
#include "kernels/gemm/packed_gemm.h"

namespace torch_tvm::kernels {

namespace ffi = tvm::ffi;

namespace {

// A NaN-keeping relu or clamp run on a kernel's output, in place, while it is
// still in cache. oneDNN's relu and clip post-ops turn NaN into 0 or a bound
// (vmaxps/vminps), where eager keeps it; ATen's relu_/clamp_ are eager's own.
struct KeepNanEpilogue {
  enum Kind { kNone, kRelu, kClamp } kind = kNone;
  double lo = 0, hi = 0;
  void Apply(at::Tensor& y) const {
    if (kind == kRelu) {
      at::relu_(y);
    } else if (kind == kClamp) {
      at::clamp_(y, lo, hi);
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
  KeepNanEpilogue epilogue;  // "relu_keep_nan" / "hardtanh_keep_nan": attr is "none"

  c10::IValue Scalars() const {
    c10::List<std::optional<c10::Scalar>> list;
    for (double v : scalars) list.push_back(c10::Scalar(v));
    return list;
  }
  c10::IValue Algorithm() const {
    return algorithm.empty() ? c10::IValue() : c10::IValue(algorithm);
  }
  // The post-op fields of a direct kernel's ConvParams / LinearParams: a
  // NaN-keeping epilogue becomes its NaN-dropping post-op under a NanGuard.
  template <typename Params>
  void FillDirect(Params& p) const {
    p.algorithm = algorithm;
    if (epilogue.kind == KeepNanEpilogue::kNone) {
      p.unary = attr;
      p.scalars = scalars;
    } else {
      p.unary = epilogue.FusedAttr();
      p.scalars = epilogue.FusedScalars();
      p.nan_guard = true;
    }
  }
};

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
  } else {
    return p;
  }
  p.attr = "none";
  p.scalars.clear();
  return p;
}

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

// Convs go to the direct oneDNN primitive unless TORCH_TVM_CONV_KERNELS=aten
// (PyTorch's mkldnn op, kept to compare against), read at each prepack.
bool DirectConvs() {
  const char* env = std::getenv("TORCH_TVM_CONV_KERNELS");
  if (env == nullptr || std::string(env).empty() || std::string(env) == "onednn") return true;
  if (std::string(env) == "aten") return false;
  TVM_FFI_THROW(ValueError) << "torch_tvm: TORCH_TVM_CONV_KERNELS must be 'onednn' or 'aten', not '"
                            << env << "'";
  TVM_FFI_UNREACHABLE();
}

struct PackedLinear {
  // The direct oneDNN inner product (kernels/dnnl/direct_linear.h); null when
  // the linear runs through PyTorch's mkldnn::_linear_pointwise instead.
  std::shared_ptr<dnnl_direct::Linear> direct;
  // torch_tvm's packed GEMM (kernels/gemm/packed_gemm.h), with relu / clamp
  // fused and any other unary run by ATen after it (sgemm_unary).
  std::shared_ptr<gemm::PackedGemm> sgemm;
  std::string sgemm_unary = "none", sgemm_algorithm;
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
// release its handles after static destructors have run.
HandleTable<PackedConv>& Convs() {
  static auto* table = new HandleTable<PackedConv>();
  return *table;
}
HandleTable<PackedLinear>& Linears() {
  static auto* table = new HandleTable<PackedLinear>();
  return *table;
}

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

// Handles resolved on first use; the dispatcher keeps them valid for the process.
const c10::OperatorHandle& ConvOp() {
  static const c10::OperatorHandle& op = Op("_convolution_pointwise", "");
  return op;
}
// Accumulates into its first argument: oneDNN's sum post-op, cheaper than the
// binary-add post-op of the out-of-place "_convolution_pointwise.binary".
const c10::OperatorHandle& ConvAddInPlaceOp() {
  static const c10::OperatorHandle& op = Op("_convolution_pointwise_", "binary");
  return op;
}

std::vector<int64_t> Vec(const ffi::Array<int64_t>& a) { return {a.begin(), a.end()}; }

// A contiguous NHWC buffer seen as a channels-last NCHW tensor, and back.
at::Tensor NhwcToTorch(const ffi::Tensor& t) { return FromTvm(t).permute({0, 3, 1, 2}); }

ffi::Tensor TorchToNhwc(at::Tensor y) {
  at::Tensor nhwc = y.permute({0, 2, 3, 1});
  if (!nhwc.is_contiguous()) {
    nhwc = nhwc.contiguous();
    GetCounters().layout_copies++;
  }
  return ToTvm(nhwc);
}

// x must be the contiguous NHWC float input the conv was packed for.
void CheckDirectInput(const ffi::Tensor& x, const std::vector<int64_t>& input_nhwc) {
  const DLTensor* t = x.GetDLTensorPtr();
  bool ok = t->ndim == 4 && t->dtype.code == kDLFloat && t->dtype.bits == 32 &&
            t->dtype.lanes == 1 && t->device.device_type == kDLCPU && x.IsContiguous();
  for (int i = 0; ok && i < 4; ++i) ok = t->shape[i] == input_nhwc[i];
  if (!ok) {
    TVM_FFI_THROW(ValueError) << "torch_tvm: conv input does not match the shape it was "
                                 "packed for";
  }
}

const float* DataOf(const ffi::Tensor& x) {
  return reinterpret_cast<const float*>(static_cast<const char*>(x.data_ptr()) + x.byte_offset());
}

at::Tensor EmptyNhwc(const dnnl_direct::Conv& conv) {
  return at::empty(conv.output_nhwc(), at::TensorOptions().dtype(at::kFloat));
}

// The outputs of clamp-bounded guarded convs (PackedConv::out_bound) that ran
// fused on this thread, by data pointer, with their bound. Each call of such a
// conv sets or erases its output's entry, so while a producer's output is alive
// its entry is that producer's. Read by conv2d_nhwc_trusting, whose input is,
// by construction of the IR (torch_tvm/_offload.py, _trust_clamped_inputs),
// the output of such a producer. Clearing it is always safe (a miss means no
// trust).
std::unordered_map<const void*, float>& BoundedOutputs() {
  thread_local std::unordered_map<const void*, float> outputs;
  return outputs;
}

// Counts a direct call whose NaN-dropping post-op was guarded.
void CountGuarded(bool guarded, bool fused) {
  if (guarded) (fused ? GetCounters().nan_guard_fused : GetCounters().nan_guard_unfused)++;
}

ffi::Tensor Conv2d(const ffi::Tensor& x, int64_t handle, bool trusting) {
  auto conv = Convs().Get(handle);
  if (conv->counted) GetCounters().conv2d++;
  c10::InferenceMode guard;
  if (conv->direct) {
    if (conv->residual) TVM_FFI_THROW(ValueError) << "torch_tvm: conv packed for a residual add";
    CheckDirectInput(x, conv->input_nhwc);
    const float* src = DataOf(x);
    bool trusted = false;
    auto& bounded = BoundedOutputs();
    if (trusting) {
      auto it = bounded.find(src);
      trusted = it != bounded.end() && it->second <= conv->direct->limit();
    }
    at::Tensor y = EmptyNhwc(*conv->direct);
    const bool fused = conv->direct->Run(src, y.data_ptr<float>(), trusted);
    if (!fused) conv->epilogue.Apply(y);
    if (conv->out_bound >= 0) {
      if (fused) {
        if (bounded.size() > 4096) bounded.clear();
        bounded[y.data_ptr()] = conv->out_bound;
      } else {
        bounded.erase(y.data_ptr());
      }
    }
    if (conv->counted) {
      GetCounters().conv2d_direct++;
      CountGuarded(conv->direct->guarded(), fused);
      if (trusted) GetCounters().nan_guard_trusted++;
    }
    return ToTvm(y);
  }
  at::Tensor y = CallOp(ConvOp(), {NhwcToTorch(x), conv->weight, conv->bias, conv->padding,
                                   conv->stride, conv->dilation, conv->groups, conv->unary_attr,
                                   conv->unary_scalars, conv->unary_algorithm});
  conv->epilogue.Apply(y);
  return TorchToNhwc(y);
}

// Whether `consumer` may trust an input written by `producer`: the producer's
// fused output bound is within the consumer's NanGuard limit.
bool Conv2dCanTrust(int64_t producer, int64_t consumer) {
  auto p = Convs().Get(producer);
  auto c = Convs().Get(consumer);
  // guarded() excludes residual convs (their sum post-op is never guarded).
  return p->out_bound >= 0 && c->direct && c->direct->guarded() &&
         p->out_bound <= c->direct->limit();
}

// conv(x) + other (then the unary post-op), accumulated into `other`'s buffer
// when `in_place`, else into a fresh copy of it. In place is legal only when
// the compiled graph never reads `other` again and owns its storage; the
// Relax pass in torch_tvm/_inplace.py proves that before choosing it.
ffi::Tensor Conv2dAdd(const ffi::Tensor& x, const ffi::Tensor& other, int64_t handle,
                      bool in_place) {
  auto conv = Convs().Get(handle);
  if (conv->counted) GetCounters().conv2d++;
  if (in_place && conv->counted) GetCounters().conv2d_in_place++;
  c10::InferenceMode guard;
  if (conv->direct) {
    if (!conv->residual) TVM_FFI_THROW(ValueError) << "torch_tvm: conv not packed for an add";
    CheckDirectInput(x, conv->input_nhwc);
    at::Tensor acc = FromTvm(other);
    if (acc.sizes() != at::IntArrayRef(conv->direct->output_nhwc()) ||
        acc.scalar_type() != at::kFloat) {
      TVM_FFI_THROW(ValueError) << "torch_tvm: residual operand does not match the conv output";
    }
    if (!in_place || !acc.is_contiguous()) acc = acc.clone(at::MemoryFormat::Contiguous);
    conv->direct->Run(DataOf(x), acc.data_ptr<float>());
    conv->epilogue.Apply(acc);
    if (conv->counted) GetCounters().conv2d_direct++;
    return ToTvm(acc);
  }
  at::Tensor acc = NhwcToTorch(other);
  if (!in_place) acc = acc.clone(at::MemoryFormat::ChannelsLast);
  at::Tensor y = CallOp(ConvAddInPlaceOp(),
                        {acc, NhwcToTorch(x), conv->weight, conv->bias, conv->padding,
                         conv->stride, conv->dilation, conv->groups, std::string("add"),
                         c10::IValue(), conv->after_add_unary, conv->unary_scalars,
                         conv->unary_algorithm});
  conv->epilogue.Apply(y);
  return TorchToNhwc(y);
}

int64_t Conv2dPrepack(const ffi::Tensor& w_ohwi, const ffi::Optional<ffi::Tensor>& bias,
                      const ffi::Array<int64_t>& padding, const ffi::Array<int64_t>& stride,
                      const ffi::Array<int64_t>& dilation, int64_t groups,
                      const ffi::Array<int64_t>& input_nhwc, const ffi::String& unary,
                      const ffi::Array<double>& unary_scalars, const ffi::String& algorithm,
                      bool residual) {
  c10::InferenceMode guard;
  PackedConv conv;
  at::Tensor w = FromTvm(w_ohwi).permute({0, 3, 1, 2}).contiguous();
  auto in = Vec(input_nhwc);
  conv.input_nhwc = in;
  conv.residual = residual;
  PostOp post = MakePostOp(unary, unary_scalars, algorithm);
  conv.epilogue = post.epilogue;
  if (DirectConvs()) {
    dnnl_direct::ConvParams p;
    p.input_nhwc = in;
    p.weight_oihw = w.sizes().vec();
    p.padding = Vec(padding);
    p.stride = Vec(stride);
    p.dilation = Vec(dilation);
    p.groups = groups;
    p.has_bias = bias.has_value();
    p.sum = residual;
    post.FillDirect(p);
    at::Tensor b = bias.has_value() ? FromTvm(*bias).contiguous() : at::Tensor();
    if (w.scalar_type() != at::kFloat || (b.defined() && b.scalar_type() != at::kFloat)) {
      TVM_FFI_THROW(TypeError) << "torch_tvm: oneDNN convs take float32 weights";
    }
    try {
      conv.direct = dnnl_direct::Conv::Create(p, w.data_ptr<float>(),
                                              b.defined() ? b.data_ptr<float>() : nullptr);
    } catch (const std::runtime_error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
    // The system oneDNN (2.6) has no direct kernel for grouped convs that are
    // not depthwise: it picks an im2col+GEMM one, 2x slower than PyTorch's
    // oneDNN and failing to execute with a residual sum. Those keep the ATen path.
    if (conv.direct->implementation().find("gemm") != std::string::npos) conv.direct.reset();
  }
  if (!conv.direct) {
    std::vector<int64_t> input_nchw = {in[0], in[3], in[1], in[2]};
    conv.padding = Vec(padding);
    conv.stride = Vec(stride);
    conv.dilation = Vec(dilation);
    conv.groups = groups;
    conv.unary_attr = post.attr;
    conv.after_add_unary = post.attr == "none" ? c10::IValue() : c10::IValue(post.attr);
    conv.unary_scalars = post.Scalars();
    conv.unary_algorithm = post.Algorithm();
    conv.weight = CallOp(Op("_reorder_convolution_weight", ""),
                         {w, conv.padding, conv.stride, conv.dilation, groups, input_nchw});
    if (bias.has_value()) conv.bias = FromTvm(*bias).clone();
  }
  if (conv.direct && conv.direct->guarded() && conv.epilogue.kind == KeepNanEpilogue::kClamp &&
      std::isfinite(conv.epilogue.lo) && std::isfinite(conv.epilogue.hi)) {
    conv.out_bound =
        static_cast<float>(std::max(std::fabs(conv.epilogue.lo), std::fabs(conv.epilogue.hi)));
  }
  conv.counted = Counted();
  if (conv.counted) GetCounters().prepacked++;
  int64_t handle = Convs().Add(std::move(conv));
  RecordConv(handle);
  return handle;
}

// Into the table, owned by the current packed-weight scope; counted unless
// packed in a timing scope.
int64_t AddLinear(PackedLinear lin) {
  lin.counted = Counted();
  if (lin.counted) GetCounters().prepacked++;
  int64_t handle = Linears().Add(std::move(lin));
  RecordLinear(handle);
  return handle;
}

// The packed GEMM for a linear with this post-op, or null when it cannot run
// it here. relu and clamp (NaN-keeping or not: keeping is what eager does)
// and erf gelu run fused; tanh gelu, sigmoid, tanh and swish run after it as
// ATen's in-place op, named in `unary` / `algorithm`.
std::shared_ptr<gemm::PackedGemm> PackSgemm(const at::Tensor& w, const at::Tensor& b,
                                            const PostOp& post, std::string& unary,
                                            std::string& algorithm) {
  gemm::Epilogue ep;
  const std::string attr = post.attr;
  if (post.epilogue.kind == KeepNanEpilogue::kRelu || attr == "relu") {
    ep.kind = gemm::Epilogue::kRelu;
  } else if (post.epilogue.kind == KeepNanEpilogue::kClamp ||
             (attr == "hardtanh" && post.scalars.size() == 2)) {
    ep.kind = gemm::Epilogue::kClamp;
    const bool kept = post.epilogue.kind == KeepNanEpilogue::kClamp;
    ep.lo = static_cast<float>(kept ? post.epilogue.lo : post.scalars[0]);
    ep.hi = static_cast<float>(kept ? post.epilogue.hi : post.scalars[1]);
  } else if (attr == "gelu" && (post.algorithm.empty() || post.algorithm == "none")) {
    ep.kind = gemm::Epilogue::kGelu;
  } else if (attr == "gelu" || attr == "sigmoid" || attr == "tanh" || attr == "swish") {
    unary = attr;
    algorithm = post.algorithm.empty() ? "none" : post.algorithm;
  } else if (attr != "none") {
    return nullptr;
  }
  try {
    return gemm::PackedGemm::Create(w.size(1), w.size(0), w.const_data_ptr<float>(),
                                    b.defined() ? b.const_data_ptr<float>() : nullptr, ep);
  } catch (const std::runtime_error&) {
    return nullptr;
  }
}

void SgemmUnary(const std::string& unary, const std::string& algorithm, at::Tensor& y) {
  if (unary == "gelu") {
    at::gelu_(y, algorithm);
  } else if (unary == "sigmoid") {
    at::sigmoid_(y);
  } else if (unary == "tanh") {
    at::tanh_(y);
  } else if (unary == "swish") {
    at::silu_(y);
  }
}

int64_t LinearPrepack(const ffi::Tensor& w_in_out, const ffi::Optional<ffi::Tensor>& bias,
                      int64_t batch, const ffi::String& unary,
                      const ffi::Array<double>& unary_scalars, const ffi::String& algorithm,
                      const ffi::String& kernel) {
  if (kernel != "onednn" && kernel != "sgemm" && kernel != "aten") {
    TVM_FFI_THROW(ValueError) << "torch_tvm: linear kernel must be 'onednn', 'sgemm' or 'aten', "
                                 "not '"
                              << kernel << "'";
  }
  c10::InferenceMode guard;
  PackedLinear lin;
  at::Tensor w = FromTvm(w_in_out).t().contiguous();  // torch's [out, in]
  PostOp post = MakePostOp(unary, unary_scalars, algorithm);
  lin.epilogue = post.epilogue;
  at::Tensor b = bias.has_value() ? FromTvm(*bias).contiguous() : at::Tensor();
  const bool floats =
      w.scalar_type() == at::kFloat && (!b.defined() || b.scalar_type() == at::kFloat);
  if (floats && kernel == "onednn") {
    dnnl_direct::LinearParams p;
    p.rows = batch;
    p.in = w.size(1);
    p.out = w.size(0);
    p.has_bias = b.defined();
    post.FillDirect(p);
    try {
      lin.direct = dnnl_direct::Linear::Create(p, w.data_ptr<float>(),
                                               b.defined() ? b.data_ptr<float>() : nullptr);
    } catch (const std::runtime_error&) {
      // Counted: PyTorch's op runs this linear instead (see direct_linear.h).
      if (Counted()) GetCounters().linear_direct_refused++;
    }
  }
  if (kernel == "sgemm") {
    if (floats) lin.sgemm = PackSgemm(w, b, post, lin.sgemm_unary, lin.sgemm_algorithm);
    if (!lin.sgemm && Counted()) GetCounters().linear_sgemm_refused++;
  }
  if (!lin.direct && !lin.sgemm) {
    lin.weight = CallOp(Op("_reorder_linear_weight", ""), {w, batch});
    if (b.defined()) lin.bias = b.clone();
    lin.unary_attr = post.attr;
    lin.unary_scalars = post.Scalars();
    lin.unary_algorithm = post.Algorithm();
  }
  return AddLinear(std::move(lin));
}

// The output of one of our two linear kernels for `input`, which must be
// contiguous float32 rows of `in` values (and `rows` of them, when rows >= 0).
at::Tensor LinearOutput(const at::Tensor& input, int64_t in, int64_t out, int64_t rows) {
  if (input.scalar_type() != at::kFloat || !input.is_contiguous() || input.dim() < 1 ||
      input.size(-1) != in || (rows >= 0 && input.numel() != rows * in)) {
    TVM_FFI_THROW(ValueError) << "torch_tvm: linear input does not match the shape it was "
                                 "packed for";
  }
  auto shape = input.sizes().vec();
  shape.back() = out;
  return at::empty(shape, at::TensorOptions().dtype(at::kFloat));
}

ffi::Tensor Linear(const ffi::Tensor& x, int64_t handle) {
  auto lin = Linears().Get(handle);
  const bool count = lin->counted;
  if (count) GetCounters().linear++;
  c10::InferenceMode guard;
  at::Tensor input = FromTvm(x);
  if (lin->direct) {
    const auto& p = lin->direct->params();
    at::Tensor y = LinearOutput(input, p.in, p.out, p.rows);
    const bool fused = lin->direct->Run(input.const_data_ptr<float>(), y.data_ptr<float>());
    if (!fused) lin->epilogue.Apply(y);
    if (count) {
      GetCounters().linear_direct++;
      CountGuarded(lin->direct->guarded(), fused);
    }
    return ToTvm(y);
  }
  if (lin->sgemm) {
    const auto& g = *lin->sgemm;
    at::Tensor y = LinearOutput(input, g.in(), g.out(), -1);
    g.Run(input.const_data_ptr<float>(), y.data_ptr<float>(), input.numel() / g.in());
    SgemmUnary(lin->sgemm_unary, lin->sgemm_algorithm, y);
    if (count) GetCounters().linear_sgemm++;
    return ToTvm(y);
  }
  static const c10::OperatorHandle& linear_op = Op("_linear_pointwise", "");
  at::Tensor y = CallOp(linear_op, {input.reshape({-1, input.size(-1)}), lin->weight, lin->bias,
                                    lin->unary_attr, lin->unary_scalars, lin->unary_algorithm});
  lin->epilogue.Apply(y);
  auto out_shape = input.sizes().vec();
  out_shape.back() = y.size(-1);
  return ToTvm(y.reshape(out_shape).contiguous());
}

// u: [batch, in, out] floats (one weight per GEMM, as at::matmul takes it).
// A handle in the linear table, released with the build like any other.
int64_t BatchedGemmPrepack(const ffi::Tensor& u) {
  c10::InferenceMode guard;
  at::Tensor w = FromTvm(u);
  if (w.dim() != 3 || w.scalar_type() != at::kFloat) {
    TVM_FFI_THROW(ValueError) << "torch_tvm: batched_gemm_prepack takes a [batch, in, out] "
                                 "float32 tensor";
  }
  PackedLinear lin;
  for (int64_t b = 0; b < w.size(0); ++b) {
    at::Tensor wb = w[b].t().contiguous();  // [out, in]
    try {
      lin.batch.push_back(gemm::PackedGemm::Create(wb.size(1), wb.size(0),
                                                   wb.const_data_ptr<float>(), nullptr, {}));
    } catch (const std::runtime_error& e) {
      TVM_FFI_THROW(RuntimeError) << e.what();
    }
  }
  return AddLinear(std::move(lin));
}

// v: [batch, rows, in] -> [batch, rows, out].
ffi::Tensor BatchedGemm(const ffi::Tensor& v, int64_t handle) {
  auto lin = Linears().Get(handle);
  c10::InferenceMode guard;
  at::Tensor x = FromTvm(v);
  if (lin->batch.empty() || x.scalar_type() != at::kFloat || !x.is_contiguous() ||
      x.dim() != 3 || x.size(0) != static_cast<int64_t>(lin->batch.size()) ||
      x.size(2) != lin->batch[0]->in()) {
    TVM_FFI_THROW(ValueError) << "torch_tvm: batched_gemm input does not match its packed weights";
  }
  at::Tensor y = at::empty({x.size(0), x.size(1), lin->batch[0]->out()},
                           at::TensorOptions().dtype(at::kFloat));
  gemm::PackedGemm::RunBatch(lin->batch, x.const_data_ptr<float>(), y.data_ptr<float>(),
                             x.size(1));
  if (lin->counted) GetCounters().batched_gemm++;
  return ToTvm(y);
}

// The bounds check is the reason this is an extern kernel: at::embedding
// raises on an out-of-range index.
ffi::Tensor Embedding(const ffi::Tensor& weight, const ffi::Tensor& indices) {
  c10::InferenceMode guard;
  return ToTvm(at::embedding(FromTvm(weight), FromTvm(indices)).contiguous());
}

ffi::Tensor MatMul(const ffi::Tensor& a, const ffi::Tensor& b) {
  GetCounters().matmul++;
  c10::InferenceMode guard;
  return ToTvm(at::matmul(FromTvm(a), FromTvm(b)).contiguous());
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("torch_tvm.kernels.conv2d_prepack", Conv2dPrepack)
      .def("torch_tvm.kernels.conv2d_nhwc",
           [](const ffi::Tensor& x, int64_t handle) { return Conv2d(x, handle, false); })
      .def("torch_tvm.kernels.conv2d_nhwc_trusting",
           [](const ffi::Tensor& x, int64_t handle) { return Conv2d(x, handle, true); })
      .def("torch_tvm.kernels.conv2d_can_trust", Conv2dCanTrust)
      .def("torch_tvm.kernels.conv2d_add_nhwc",
           [](const ffi::Tensor& x, const ffi::Tensor& other, int64_t handle) {
             return Conv2dAdd(x, other, handle, /*in_place=*/false);
           })
      .def("torch_tvm.kernels.conv2d_add_nhwc_inplace",
           [](const ffi::Tensor& x, const ffi::Tensor& other, int64_t handle) {
             return Conv2dAdd(x, other, handle, /*in_place=*/true);
           })
      .def("torch_tvm.kernels.linear_prepack", LinearPrepack)
      .def("torch_tvm.kernels.linear", Linear)
      .def("torch_tvm.kernels.linear_kernel",
           [](int64_t handle) -> ffi::String {
             auto lin = Linears().Get(handle);
             return lin->direct ? "onednn" : lin->sgemm ? "sgemm" : "aten";
           })
      .def("torch_tvm.kernels.matmul", MatMul)
      .def("torch_tvm.kernels.packed_gemm_supported", [] { return gemm::PackedGemm::Supported(); })
      .def("torch_tvm.kernels.batched_gemm_prepack", BatchedGemmPrepack)
      .def("torch_tvm.kernels.batched_gemm", BatchedGemm)
      .def("torch_tvm.kernels.embedding", Embedding)
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
