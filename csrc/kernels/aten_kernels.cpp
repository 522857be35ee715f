// ATen's own CPU kernels for the norms, softmax and sum/mean, called from TVM-compiled
// graphs where the build measured them faster than TVM's generated kernel for
// that op and shape (torch_tvm/_aten_choice.py). Same numerics as eager
// PyTorch, same OpenMP pool.
//
// Registered tvm-ffi globals:
//   torch_tvm.kernels.aten_softmax(x, dim, log) -> softmax (log 0) / log_softmax (1) over dim
//   torch_tvm.kernels.aten_layer_norm(x, gamma, beta, normalized_ndim, eps)
//   torch_tvm.kernels.aten_group_norm(x, gamma, beta, groups, eps)
//   torch_tvm.kernels.aten_reduce(x, axes_mask, keepdim, mean) -> sum (mean 0) / mean (1)
//     over the axes whose bit is set in axes_mask
// and, for ops with no fast TVM kernel (the converters call them directly):
//   torch_tvm.kernels.aten_convolution(x, w, b, params): at::convolution; b has no
//     elements when there is no bias; params (int64) = [transposed, groups, n,
//     stride[n], padding[n], dilation[n], output_padding[n]]
//   torch_tvm.kernels.aten_max_pool3d(x, params): params = [kernel[3], stride[3],
//     padding[3], dilation[3], ceil_mode]
//   torch_tvm.kernels.aten_sdpa(q, k, v, mask, params, scale): scaled dot-product
//     attention; mask has no elements when there is none; params (int64) =
//     [is_causal], scale (float64) = [scale]. Without a mask it runs torch_tvm's
//     packed attention (kernels/gemm/packed_gemm.h, 2-3x ATen's on BERT-base's
//     heads), counted in sdpa_packed_calls; with one, or on a CPU without
//     AVX2/FMA, or with TORCH_TVM_SDPA_KERNEL=aten, at::scaled_dot_product_attention
//     (ATen's fused flash kernel).
// and with several outputs (returned as an ffi::Array; the last argument is the
// declared output types RelaxBuilder::CallExternTuple appends, checked here):
//   torch_tvm.kernels.aten_lstm(input, h0, c0, weights..., cfg, shapes) -> (output, hy, cy)
//   torch_tvm.kernels.aten_gru(input, h0, weights..., cfg, shapes) -> (output, hy)
//     cfg (int64) = [has_biases, num_layers, train, bidirectional, batch_first]
//   torch_tvm.kernels.aten_embedding_bag(weight, indices, offsets, per_sample_weights, cfg,
//     shapes) -> (output, offset2bag, bag_size, max_indices); per_sample_weights has no
//     elements when there are none; cfg (int64) = [mode, include_last_offset,
//     has_per_sample_weights, has_padding_idx, padding_idx, weight_requires_grad]
#include <ATen/ATen.h>
#include <tvm/ffi/reflection/registry.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "common/dlpack_bridge.h"
#include "kernels/counters.h"
#include "kernels/gemm/packed_gemm.h"

namespace torch_tvm::kernels {

namespace ffi = tvm::ffi;

namespace {

ffi::Tensor Softmax(const ffi::Tensor& x, int64_t dim, int64_t log) {
  GetCounters().aten_softmax++;
  c10::InferenceMode guard;
  at::Tensor t = FromTvm(x);
  return ToTvm(log ? at::log_softmax(t, dim) : at::softmax(t, dim));
}

ffi::Tensor LayerNorm(const ffi::Tensor& x, const ffi::Tensor& gamma, const ffi::Tensor& beta,
                      int64_t normalized_ndim, double eps) {
  GetCounters().aten_layer_norm++;
  c10::InferenceMode guard;
  at::Tensor t = FromTvm(x);
  auto sizes = t.sizes();
  std::vector<int64_t> normalized(sizes.end() - normalized_ndim, sizes.end());
  return ToTvm(at::layer_norm(t, normalized, FromTvm(gamma), FromTvm(beta), eps));
}

ffi::Tensor GroupNorm(const ffi::Tensor& x, const ffi::Tensor& gamma, const ffi::Tensor& beta,
                      int64_t groups, double eps) {
  GetCounters().aten_group_norm++;
  c10::InferenceMode guard;
  return ToTvm(at::group_norm(FromTvm(x), groups, FromTvm(gamma), FromTvm(beta), eps));
}

ffi::Tensor Reduce(const ffi::Tensor& x, int64_t axes_mask, int64_t keepdim, int64_t mean) {
  GetCounters().aten_reduce++;
  c10::InferenceMode guard;
  at::Tensor t = FromTvm(x);
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (axes_mask & (int64_t{1} << d)) dims.push_back(d);
  }
  at::Tensor y = mean ? at::mean(t, dims, keepdim != 0) : at::sum(t, dims, keepdim != 0);
  return ToTvm(y.contiguous());
}

std::vector<int64_t> Take(const at::Tensor& params, int64_t& at, int64_t n) {
  const int64_t* p = params.data_ptr<int64_t>();
  std::vector<int64_t> out(p + at, p + at + n);
  at += n;
  return out;
}

ffi::Tensor Convolution(const ffi::Tensor& x, const ffi::Tensor& w, const ffi::Tensor& b,
                        const ffi::Tensor& params) {
  GetCounters().aten_convolution++;
  c10::InferenceMode guard;
  at::Tensor p = FromTvm(params), bias = FromTvm(b);
  int64_t at_ = 3, n = p.data_ptr<int64_t>()[2];
  bool transposed = p.data_ptr<int64_t>()[0] != 0;
  int64_t groups = p.data_ptr<int64_t>()[1];
  auto stride = Take(p, at_, n), padding = Take(p, at_, n), dilation = Take(p, at_, n);
  auto output_padding = Take(p, at_, n);
  std::optional<at::Tensor> opt_bias;
  if (bias.numel() > 0) opt_bias = bias;
  return ToTvm(at::convolution(FromTvm(x), FromTvm(w), opt_bias, stride, padding, dilation,
                               transposed, output_padding, groups)
                   .contiguous());
}

// Whether torch_tvm's packed attention takes q, k, v (no mask): float32,
// contiguous, the same leading (batch, head) dims, k and q of one depth, v as
// long as k, on a CPU with AVX2/FMA, unless TORCH_TVM_SDPA_KERNEL=aten.
bool PackedAttentionTakes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const char* env = std::getenv("TORCH_TVM_SDPA_KERNEL");  // read per call: A/B and tests
  if ((env != nullptr && std::string(env) == "aten") || !gemm::PackedGemm::Supported()) {
    return false;
  }
  const int64_t nd = q.dim();
  if (nd < 3 || k.dim() != nd || v.dim() != nd) return false;
  for (const at::Tensor* t : {&q, &k, &v}) {
    if (t->scalar_type() != at::kFloat || !t->is_contiguous() || t->numel() == 0) return false;
  }
  return q.sizes().slice(0, nd - 2) == k.sizes().slice(0, nd - 2) &&
         q.sizes().slice(0, nd - 2) == v.sizes().slice(0, nd - 2) &&
         q.size(-1) == k.size(-1) && k.size(-2) == v.size(-2);
}

ffi::Tensor Sdpa(const ffi::Tensor& q, const ffi::Tensor& k, const ffi::Tensor& v,
                 const ffi::Tensor& mask, const ffi::Tensor& params, const ffi::Tensor& scale) {
  GetCounters().aten_sdpa++;
  c10::InferenceMode guard;
  at::Tensor m = FromTvm(mask);
  at::Tensor tq = FromTvm(q), tk = FromTvm(k), tv = FromTvm(v);
  const bool causal = FromTvm(params).data_ptr<int64_t>()[0] != 0;
  const double s = FromTvm(scale).data_ptr<double>()[0];
  if (m.numel() == 0 && PackedAttentionTakes(tq, tk, tv)) {
    std::vector<int64_t> shape = tq.sizes().vec();
    shape.back() = tv.size(-1);
    at::Tensor o = at::empty(shape, at::TensorOptions().dtype(at::kFloat));
    const int64_t sq = tq.size(-2), skv = tk.size(-2), d = tq.size(-1), dv = tv.size(-1);
    gemm::Attention(tq.numel() / (sq * d), sq, skv, d, dv, tq.const_data_ptr<float>(),
                    tk.const_data_ptr<float>(), tv.const_data_ptr<float>(), o.data_ptr<float>(),
                    static_cast<float>(s), causal);
    GetCounters().sdpa_packed++;
    return ToTvm(o);
  }
  std::optional<at::Tensor> opt_mask;
  if (m.numel() > 0) opt_mask = m;
  return ToTvm(at::scaled_dot_product_attention(tq, tk, tv, opt_mask, 0.0, causal, s)
                   .contiguous());
}

ffi::Tensor MaxPool3d(const ffi::Tensor& x, const ffi::Tensor& params) {
  GetCounters().aten_max_pool3d++;
  c10::InferenceMode guard;
  at::Tensor p = FromTvm(params);
  int64_t at_ = 0;
  auto kernel = Take(p, at_, 3), stride = Take(p, at_, 3), padding = Take(p, at_, 3);
  auto dilation = Take(p, at_, 3);
  bool ceil_mode = p.data_ptr<int64_t>()[at_] != 0;
  return ToTvm(
      at::max_pool3d(FromTvm(x), kernel, stride, padding, dilation, ceil_mode).contiguous());
}

// The results of a several-output kernel, checked against the types the
// compiled graph declared for them (per output: at::ScalarType number, ndim,
// then the dims), made
// dense and 64-byte aligned, and not sharing storage with each other.
ffi::Array<ffi::Any> TupleResult(const char* op, const std::vector<at::Tensor>& outs,
                                 const ffi::Tensor& declared) {
  at::Tensor d = FromTvm(declared);
  const int64_t* dims = d.const_data_ptr<int64_t>();
  int64_t at_ = 0;
  ffi::Array<ffi::Any> result;
  for (size_t i = 0; i < outs.size(); ++i) {
    TORCH_CHECK(at_ + 2 <= d.numel(), "torch_tvm: ", op, " returned more outputs than declared");
    auto dtype = static_cast<at::ScalarType>(dims[at_]);
    int64_t ndim = dims[at_ + 1];
    at_ += 2;
    TORCH_CHECK(at_ + ndim <= d.numel(), "torch_tvm: ", op, ": malformed declared types");
    c10::IntArrayRef shape(dims + at_, ndim);
    at_ += ndim;
    TORCH_CHECK(outs[i].sizes() == shape && outs[i].scalar_type() == dtype, "torch_tvm: ", op,
                " output ", i, " is ", outs[i].scalar_type(), outs[i].sizes(),
                " but the compiled graph declared ", dtype, shape);
    at::Tensor t = outs[i];
    bool shared = false;
    for (size_t j = 0; j < i; ++j) {
      shared = shared || (t.numel() > 0 && t.storage().is_alias_of(outs[j].storage()));
    }
    if (shared || NeedsCopyForTvm(t)) t = t.clone(at::MemoryFormat::Contiguous);
    result.push_back(ToTvm(t));
  }
  TORCH_CHECK(at_ == d.numel(), "torch_tvm: ", op, " returned fewer outputs than declared");
  return result;
}

std::vector<at::Tensor> TensorArgs(const ffi::PackedArgs& args, int begin, int end) {
  std::vector<at::Tensor> out;
  for (int i = begin; i < end; ++i) out.push_back(FromTvm(args[i].cast<ffi::Tensor>()));
  return out;
}

// aten_lstm / aten_gru: input, the hidden states (2 / 1), the weights, cfg, shapes.
void Rnn(ffi::PackedArgs args, ffi::Any* rv, bool lstm) {
  (lstm ? GetCounters().aten_lstm : GetCounters().aten_gru)++;
  c10::InferenceMode guard;
  const int n = args.size(), n_hx = lstm ? 2 : 1;
  TORCH_CHECK(n >= 3 + n_hx, "torch_tvm: too few arguments for an rnn kernel");
  at::Tensor cfg = FromTvm(args[n - 2].cast<ffi::Tensor>());
  const int64_t* c = cfg.const_data_ptr<int64_t>();
  bool has_biases = c[0] != 0, train = c[2] != 0, bidirectional = c[3] != 0;
  bool batch_first = c[4] != 0;
  int64_t num_layers = c[1];
  at::Tensor input = FromTvm(args[0].cast<ffi::Tensor>());
  std::vector<at::Tensor> hx = TensorArgs(args, 1, 1 + n_hx);
  std::vector<at::Tensor> params = TensorArgs(args, 1 + n_hx, n - 2);
  // dropout: the converter rejects train with dropout > 0; otherwise it has no effect.
  std::vector<at::Tensor> outs;
  if (lstm) {
    auto [y, h, cy] = at::lstm(input, hx, params, has_biases, num_layers, 0.0, train,
                               bidirectional, batch_first);
    outs = {y, h, cy};
  } else {
    auto [y, h] = at::gru(input, hx[0], params, has_biases, num_layers, 0.0, train,
                          bidirectional, batch_first);
    outs = {y, h};
  }
  *rv = TupleResult(lstm ? "aten_lstm" : "aten_gru", outs, args[n - 1].cast<ffi::Tensor>());
}

// The same ATen call eager makes. at::embedding_bag runs the forward-only
// kernel for a weight that does not require grad, and at::_embedding_bag
// otherwise; they differ in the length of bag_size / max_indices for
// mode="sum" with include_last_offset. Weights reach this kernel without
// requires_grad, so the converter says which path eager took.
ffi::Array<ffi::Any> EmbeddingBag(const ffi::Tensor& weight, const ffi::Tensor& indices,
                                  const ffi::Tensor& offsets, const ffi::Tensor& psw,
                                  const ffi::Tensor& cfg_t, const ffi::Tensor& declared) {
  GetCounters().aten_embedding_bag++;
  c10::InferenceMode guard;
  at::Tensor cfg = FromTvm(cfg_t);
  const int64_t* c = cfg.const_data_ptr<int64_t>();
  int64_t mode = c[0];
  bool include_last_offset = c[1] != 0, requires_grad_path = c[5] != 0;
  std::optional<at::Tensor> per_sample_weights;
  if (c[2] != 0) per_sample_weights = FromTvm(psw);
  std::optional<int64_t> padding_idx;
  if (c[3] != 0) padding_idx = c[4];
  at::Tensor w = FromTvm(weight), idx = FromTvm(indices), off = FromTvm(offsets);
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> r;
  if (!requires_grad_path) {
    r = at::embedding_bag(w, idx, off, false, mode, false, per_sample_weights,
                          include_last_offset, padding_idx);
  } else {
    // at::embedding_bag's own steps for a weight that requires grad.
    int64_t pad = -1;
    if (padding_idx) {
      int64_t num = w.size(0);
      TORCH_CHECK(*padding_idx >= -num && *padding_idx < num,
                  "padding_idx must be within the number of embeddings, -", num, " through ",
                  num - 1, ", but got ", *padding_idx);
      pad = c10::maybe_wrap_dim(*padding_idx, num);
    }
    r = at::_embedding_bag(w, idx.contiguous(), off.contiguous(), false, mode, false,
                           per_sample_weights, include_last_offset, pad);
  }
  return TupleResult("aten_embedding_bag",
                     {std::get<0>(r), std::get<1>(r), std::get<2>(r), std::get<3>(r)}, declared);
}

}  // namespace

TVM_FFI_STATIC_INIT_BLOCK() {
  namespace refl = tvm::ffi::reflection;
  refl::GlobalDef()
      .def("torch_tvm.kernels.aten_softmax", Softmax)
      .def("torch_tvm.kernels.aten_layer_norm", LayerNorm)
      .def("torch_tvm.kernels.aten_group_norm", GroupNorm)
      .def("torch_tvm.kernels.aten_reduce", Reduce)
      .def("torch_tvm.kernels.aten_convolution", Convolution)
      .def("torch_tvm.kernels.aten_max_pool3d", MaxPool3d)
      .def("torch_tvm.kernels.aten_sdpa", Sdpa)
      .def_packed("torch_tvm.kernels.aten_lstm",
                  [](ffi::PackedArgs args, ffi::Any* rv) { Rnn(args, rv, /*lstm=*/true); })
      .def_packed("torch_tvm.kernels.aten_gru",
                  [](ffi::PackedArgs args, ffi::Any* rv) { Rnn(args, rv, /*lstm=*/false); })
      .def("torch_tvm.kernels.aten_embedding_bag", EmbeddingBag);
}

}  // namespace torch_tvm::kernels
