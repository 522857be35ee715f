#include "kernels/dnnl/direct_linear.h"

#include <stdexcept>
#include <utility>
#include <vector>

#include "kernels/dnnl/dnnl_common.h"

namespace torch_tvm::kernels::dnnl_direct {

using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using detail::Engine;

using Built = detail::Built<dnnl::inner_product_forward>;

struct Linear::Impl {
  LinearParams params;
  Built plain;  // without a guarded unary
  Built fused;  // with it (when guarded)
  bool guarded = false;
  detail::NanGuard guard;
  memory::desc src_md, dst_md;
  memory bias;
};

Linear::Linear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Linear::~Linear() = default;

std::shared_ptr<Linear> Linear::Create(const LinearParams& p, const float* weights,
                                       const float* bias) {
  if (p.rows < 1 || p.in < 1 || p.out < 1 || weights == nullptr ||
      (p.has_bias && bias == nullptr)) {
    throw std::runtime_error("torch_tvm: inconsistent linear parameters");
  }
  try {
    auto impl = std::make_unique<Impl>();
    impl->params = p;
    impl->src_md = memory::desc({p.rows, p.in}, dt::f32, tag::nc);
    impl->dst_md = memory::desc({p.rows, p.out}, dt::f32, tag::nc);
    memory::desc user_w({p.out, p.in}, dt::f32, tag::oi);
    memory::desc any_w({p.out, p.in}, dt::f32, tag::any);
    memory::desc bias_md({p.out}, dt::f32, tag::x);

    auto desc = p.has_bias ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                                               impl->src_md, any_w, bias_md,
                                                               impl->dst_md)
                           : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                                               impl->src_md, any_w, impl->dst_md);
    auto post_ops = [&](bool with_unary) {
      dnnl::post_ops ops;
      if (with_unary) detail::AppendUnary(ops, p.unary, p.scalars, p.algorithm);
      return ops;
    };
    using Prim = dnnl::inner_product_forward;
    impl->guarded = p.nan_guard && 2 * p.in <= p.out;
    impl->plain = detail::Build<Prim>(desc, post_ops(!p.nan_guard), user_w, weights, nullptr);
    if (impl->guarded) {
      impl->fused = detail::Build<Prim>(desc, post_ops(true), user_w, weights, &impl->plain);
      impl->guard = detail::NanGuard::For(weights, p.out, p.in, p.has_bias ? bias : nullptr);
    }
    if (p.has_bias) {
      impl->bias = detail::PackOnce(bias_md, bias_md, bias);
    }
    auto linear = std::shared_ptr<Linear>(new Linear(std::move(impl)));
    // One run on zeros: oneDNN's GEMM fails to execute when this oneDNN's
    // internal symbols were bound to another copy's (PyTorch exports a
    // std::call_once thunk of its own oneDNN's GEMM initialisation, and a
    // process that loads torch before resolving this library binds to it;
    // torch_tvm/__init__.py loads this library first). Refusing here lets the
    // caller take another kernel instead of failing at run time.
    std::vector<float> src(p.rows * p.in, 0.f), dst(p.rows * p.out);
    const Impl& m = *linear->impl_;
    auto probe = [&](const Built& b) {
      detail::Run(b, m.src_md, m.dst_md, src.data(), dst.data(), p.has_bias ? &m.bias : nullptr,
                  "inner product");
    };
    probe(m.plain);
    if (m.guarded) probe(m.fused);
    return linear;
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("torch_tvm: oneDNN inner product: ") + e.what());
  }
}

const LinearParams& Linear::params() const { return impl_->params; }

std::string Linear::implementation() const { return impl_->plain.impl_name; }

bool Linear::guarded() const { return impl_->guarded; }

bool Linear::Run(const float* src, float* dst) const {
  const Impl& m = *impl_;
  const bool fused = m.guarded && m.guard.Admits(src, m.params.rows * m.params.in);
  detail::Run(fused ? m.fused : m.plain, m.src_md, m.dst_md, src, dst,
              m.params.has_bias ? &m.bias : nullptr, "inner product");
  return fused;
}

}  // namespace torch_tvm::kernels::dnnl_direct
