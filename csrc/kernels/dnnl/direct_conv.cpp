#include "kernels/dnnl/direct_conv.h"

#include <stdexcept>
#include <utility>

#include "kernels/dnnl/dnnl_common.h"

namespace torch_tvm::kernels::dnnl_direct {

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using detail::Engine;

memory::dims Dims(const std::vector<int64_t>& v) { return memory::dims(v.begin(), v.end()); }

}  // namespace

struct Conv::Impl {
  detail::Built<dnnl::convolution_forward> plain;  // without a guarded unary
  detail::Built<dnnl::convolution_forward> fused;  // with it (when guarded)
  bool guarded = false;
  bool scan = false;  // the input is small enough to be worth scanning
  detail::NanGuard guard;
  int64_t src_elems = 0;
  memory::desc src_md, dst_md;
  memory bias;
  bool has_bias = false;
  std::vector<int64_t> out_nhwc;
};

Conv::Conv(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Conv::~Conv() = default;

std::shared_ptr<Conv> Conv::Create(const ConvParams& p, const float* weights, const float* bias) {
  try {
    auto impl = std::make_unique<Impl>();
    const auto& in = p.input_nhwc;
    const auto& w = p.weight_oihw;
    if (in.size() != 4 || w.size() != 4 || p.padding.size() != 2 || p.stride.size() != 2 ||
        p.dilation.size() != 2 || p.groups < 1 || w[0] % p.groups != 0 ||
        in[3] != w[1] * p.groups) {
      throw std::runtime_error("torch_tvm: inconsistent convolution parameters");
    }
    int64_t oh = (in[1] + 2 * p.padding[0] - p.dilation[0] * (w[2] - 1) - 1) / p.stride[0] + 1;
    int64_t ow = (in[2] + 2 * p.padding[1] - p.dilation[1] * (w[3] - 1) - 1) / p.stride[1] + 1;
    if (oh < 1 || ow < 1) throw std::runtime_error("torch_tvm: empty convolution output");
    impl->out_nhwc = {in[0], oh, ow, w[0]};
    // oneDNN's logical dims are NCHW whatever the memory layout.
    impl->src_md = memory::desc({in[0], in[3], in[1], in[2]}, dt::f32, tag::nhwc);
    impl->dst_md = memory::desc({in[0], w[0], oh, ow}, dt::f32, tag::nhwc);
    memory::dims wdims = p.groups == 1
                             ? memory::dims{w[0], w[1], w[2], w[3]}
                             : memory::dims{p.groups, w[0] / p.groups, w[1], w[2], w[3]};
    memory::desc user_w(wdims, dt::f32, p.groups == 1 ? tag::oihw : tag::goihw);
    memory::desc any_w(wdims, dt::f32, tag::any);
    memory::desc bias_md({w[0]}, dt::f32, tag::x);

    // oneDNN counts dilation from 0 (no gap); PyTorch from 1.
    memory::dims dil{p.dilation[0] - 1, p.dilation[1] - 1};
    memory::dims pad{p.padding[0], p.padding[1]};
    auto desc = p.has_bias
                    ? dnnl::convolution_forward::desc(
                          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                          impl->src_md, any_w, bias_md, impl->dst_md, Dims(p.stride), dil, pad, pad)
                    : dnnl::convolution_forward::desc(
                          dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                          impl->src_md, any_w, impl->dst_md, Dims(p.stride), dil, pad, pad);
    auto post_ops = [&](bool with_unary) {
      dnnl::post_ops ops;
      if (p.sum) ops.append_sum(1.f);
      if (with_unary) detail::AppendUnary(ops, p.unary, p.scalars, p.algorithm);
      return ops;
    };
    using Prim = dnnl::convolution_forward;
    impl->src_elems = in[0] * in[1] * in[2] * in[3];
    const int64_t dst_elems = in[0] * oh * ow * w[0];
    impl->guarded = p.nan_guard && !p.sum;
    impl->scan = 2 * impl->src_elems <= dst_elems;
    impl->plain = detail::Build<Prim>(desc, post_ops(!p.nan_guard), user_w, weights, nullptr);
    if (impl->guarded) {
      impl->fused = detail::Build<Prim>(desc, post_ops(true), user_w, weights, &impl->plain);
      impl->guard = detail::NanGuard::For(weights, w[0], w[1] * w[2] * w[3],
                                          p.has_bias ? bias : nullptr);
    }
    if (p.has_bias) {
      impl->bias = detail::PackOnce(bias_md, bias_md, bias);
      impl->has_bias = true;
    }
    return std::shared_ptr<Conv>(new Conv(std::move(impl)));
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("torch_tvm: oneDNN convolution: ") + e.what());
  }
}

const std::vector<int64_t>& Conv::output_nhwc() const { return impl_->out_nhwc; }

std::string Conv::implementation() const { return impl_->plain.impl_name; }

bool Conv::guarded() const { return impl_->guarded; }

float Conv::limit() const { return impl_->guarded ? impl_->guard.limit : -1.f; }

bool Conv::Run(const float* src, float* dst, bool trusted) const {
  const Impl& m = *impl_;
  const bool fused = m.guarded && m.guard.limit >= 0 &&
                     (trusted || (m.scan && m.guard.Admits(src, m.src_elems)));
  detail::Run(fused ? m.fused : m.plain, m.src_md, m.dst_md, src, dst,
              m.has_bias ? &m.bias : nullptr, "convolution");
  return fused;
}

std::string Version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
         std::to_string(v->patch);
}

}  // namespace torch_tvm::kernels::dnnl_direct
