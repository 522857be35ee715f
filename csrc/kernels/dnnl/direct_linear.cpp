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

struct Linear::Impl {
  LinearParams params;
  dnnl::inner_product_forward prim;
  memory::desc src_md, dst_md, scratch_md;
  memory weights, bias;
  size_t scratch_bytes = 0;
  std::string impl_name;
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

    dnnl::post_ops ops;
    detail::AppendUnary(ops, p.unary, p.scalars, p.algorithm);
    dnnl::primitive_attr attr;
    attr.set_post_ops(ops);
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    auto desc = p.has_bias ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                                               impl->src_md, any_w, bias_md,
                                                               impl->dst_md)
                           : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference,
                                                               impl->src_md, any_w, impl->dst_md);
    dnnl::inner_product_forward::primitive_desc pd(desc, attr, Engine());
    impl->prim = dnnl::inner_product_forward(pd);
    impl->impl_name = pd.impl_info_str();
    impl->scratch_md = pd.scratchpad_desc();
    impl->scratch_bytes = impl->scratch_md.get_size();

    // The weights, reordered once into the layout the primitive wants.
    impl->weights = detail::PackOnce(pd.weights_desc(), user_w, weights);
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
    linear->Run(src.data(), dst.data());
    return linear;
  } catch (const dnnl::error& e) {
    throw std::runtime_error(std::string("torch_tvm: oneDNN inner product: ") + e.what());
  }
}

const LinearParams& Linear::params() const { return impl_->params; }

std::string Linear::implementation() const { return impl_->impl_name; }

void Linear::Run(const float* src, float* dst) const {
  const Impl& m = *impl_;
  memory s(m.src_md, Engine(), const_cast<float*>(src));
  memory d(m.dst_md, Engine(), dst);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, m.weights}, {DNNL_ARG_DST, d}};
  if (m.params.has_bias) args.emplace(DNNL_ARG_BIAS, m.bias);
  detail::Execute(m.prim, std::move(args), m.scratch_md, m.scratch_bytes, "inner product");
}

}  // namespace torch_tvm::kernels::dnnl_direct
