// Shared by the direct oneDNN kernels of this folder (direct_conv.cpp,
// direct_linear.cpp); includes oneDNN's header, so nothing outside this folder
// may include it (the torch include path carries another oneDNN version).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace torch_tvm::kernels::dnnl_direct::detail {

dnnl::engine& Engine();

// One stream per calling thread: a stream is not meant to be shared.
dnnl::stream& Stream();

// User-managed scratchpad, one growing buffer per calling thread: oneDNN's
// library-managed one is shared between primitives unless built with
// concurrent execution, so two compiled groups running on two threads could
// clash in it.
void* Scratch(size_t bytes);

// Appends the eltwise post-op `unary` ("none", "relu", "sigmoid", "tanh",
// "swish", "gelu" with algorithm "none"/"" or "tanh", "hardtanh" with scalars
// lo, hi); throws std::runtime_error for anything else.
void AppendUnary(dnnl::post_ops& ops, const std::string& unary, const std::vector<double>& scalars,
                 const std::string& algorithm);

// A new memory of layout `wanted` holding `data` (laid out as `user`), copied
// or reordered once, now: the packed weights and bias of a primitive.
dnnl::memory PackOnce(const dnnl::memory::desc& wanted, const dnnl::memory::desc& user,
                      const float* data);

// Whether a NaN-dropping post-op can run fused on y = b + W x without changing
// a result. oneDNN's relu and clip post-ops are max/min instructions that turn
// a NaN into 0 or a bound, where torch's relu/clamp keep it. y holds a NaN or an
// infinity only if x, W or b does, or if the sum overflows; with W and b finite,
// |y| <= max|b| + max_o sum_i |W[o,i]| * max|x| (zero padding only lowers it).
// `limit` is the largest max|x| that keeps that bound under FLT_MAX / 4, so an
// input whose every |x| <= limit makes y finite, and the fused post-op exact.
struct NanGuard {
  float limit = -1.f;  // negative when W or b is not finite: nothing is admitted
  // w: `rows` rows of `row_len` contiguous floats (one per output channel);
  // bias: `rows` floats or nullptr.
  static NanGuard For(const float* w, int64_t rows, int64_t row_len, const float* bias);
  // Every |x[i]| <= limit (false for any NaN or infinity). One read of x.
  bool Admits(const float* x, int64_t n) const;
};

// One primitive of a direct kernel: its scratchpad and its packed weights.
template <typename Prim>
struct Built {
  Prim prim;
  dnnl::memory::desc scratch_md;
  size_t scratch_bytes = 0;
  dnnl::memory weights;
  std::string impl_name;  // oneDNN's name of the implementation it chose
};

// Builds `Prim` (convolution_forward, inner_product_forward) from `desc` with
// `ops` as post-ops and a user scratchpad. Its weights are `share`'s when both
// want the same layout (the two primitives of a guarded kernel), else
// reordered once from `weights`, laid out as `user_w`.
template <typename Prim, typename Desc>
Built<Prim> Build(const Desc& desc, const dnnl::post_ops& ops, const dnnl::memory::desc& user_w,
                  const float* weights, const Built<Prim>* share) {
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  typename Prim::primitive_desc pd(desc, attr, Engine());
  Built<Prim> b;
  b.prim = Prim(pd);
  b.scratch_md = pd.scratchpad_desc();
  b.scratch_bytes = b.scratch_md.get_size();
  b.weights = share != nullptr && share->weights.get_desc() == pd.weights_desc()
                  ? share->weights
                  : PackOnce(pd.weights_desc(), user_w, weights);
  b.impl_name = pd.impl_info_str();
  return b;
}

// Runs `prim` on `args`, adding the scratchpad it needs, and waits.
void Execute(const dnnl::primitive& prim, std::unordered_map<int, dnnl::memory> args,
             const dnnl::memory::desc& scratch_md, size_t scratch_bytes, const char* what);

// Runs a Built primitive on src -> dst (user memory of src_md / dst_md), with
// its packed weights and, when given, the packed bias.
template <typename Prim>
void Run(const Built<Prim>& b, const dnnl::memory::desc& src_md, const dnnl::memory::desc& dst_md,
         const float* src, float* dst, const dnnl::memory* bias, const char* what) {
  dnnl::memory s(src_md, Engine(), const_cast<float*>(src));
  dnnl::memory d(dst_md, Engine(), dst);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, b.weights}, {DNNL_ARG_DST, d}};
  if (bias != nullptr) args.emplace(DNNL_ARG_BIAS, *bias);
  Execute(b.prim, std::move(args), b.scratch_md, b.scratch_bytes, what);
}

}  // namespace torch_tvm::kernels::dnnl_direct::detail
