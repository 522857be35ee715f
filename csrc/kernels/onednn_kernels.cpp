// Extern kernels for 2d convolutions, which TVM-compiled graphs call for
// their heaviest op: a oneDNN primitive built once per conv
// (kernels/dnnl/direct_conv.h), or with TORCH_TVM_CONV_KERNELS=aten PyTorch's
// mkldnn::_convolution_pointwise, as before the direct path existed. All share
// PyTorch's OpenMP pool. Linears and GEMMs are in linear_kernels.cpp; the
// packed-weight tables and scopes both use are in packed_weights.h.
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
#include <tvm/ffi/reflection/registry.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <vector>

#include "common/dlpack_bridge.h"
#include "kernels/counters.h"
#include "kernels/packed_weights.h"

namespace torch_tvm::kernels {

namespace {

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
           });
}

}  // namespace torch_tvm::kernels
