// Extern kernels for linears and GEMMs: a linear through a oneDNN inner
// product built once (kernels/dnnl/direct_linear.h), through torch_tvm's own
// packed GEMM (kernels/gemm/packed_gemm.h) or through the oneDNN inside
// PyTorch, reached with the dispatcher (mkldnn::_linear_pointwise, as Inductor
// calls it), whichever torch_tvm/_linear_choice.py measured fastest for the
// shape; the Winograd convolutions' batched GEMMs; matmul and embedding.
//
// Registered tvm-ffi globals (called from the Relax VM by name):
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
//   torch_tvm.kernels.packed_gemm_isa() -> "avx512" | "avx2" | "" (its micro-kernel here)
//   torch_tvm.kernels.batched_gemm_prepack(u [batch, in, out]) -> handle
//   torch_tvm.kernels.batched_gemm(v [batch, rows, in], handle) -> v @ u, on the packed GEMM
//                                    (the Winograd convolutions' alpha^2 GEMMs)
//   torch_tvm.kernels.embedding(weight, indices) -> rows (bounds-checked)
#include <tvm/ffi/reflection/registry.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/dlpack_bridge.h"
#include "kernels/counters.h"
#include "kernels/packed_weights.h"

namespace torch_tvm::kernels {

namespace {

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
  } else if (post.IsErfGelu()) {
    ep.kind = gemm::Epilogue::kGelu;
    ep.inf_gives_nan = EagerGeluInfIsNan();
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

void AfterUnary(const std::string& unary, const std::string& algorithm, at::Tensor& y) {
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
    if (floats) lin.sgemm = PackSgemm(w, b, post, lin.after_unary, lin.after_algorithm);
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
    AfterUnary(lin->after_unary, lin->after_algorithm, y);
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
      .def("torch_tvm.kernels.linear_prepack", LinearPrepack)
      .def("torch_tvm.kernels.linear", Linear)
      .def("torch_tvm.kernels.linear_kernel",
           [](int64_t handle) -> ffi::String {
             auto lin = Linears().Get(handle);
             return lin->direct ? "onednn" : lin->sgemm ? "sgemm" : "aten";
           })
      .def("torch_tvm.kernels.matmul", MatMul)
      .def("torch_tvm.kernels.packed_gemm_supported", [] { return gemm::PackedGemm::Supported(); })
      .def("torch_tvm.kernels.packed_gemm_isa",
           []() -> ffi::String {
             return gemm::PackedGemm::SupportsAvx512() ? "avx512"
                    : gemm::PackedGemm::Supported()    ? "avx2"
                                                       : "";
           })
      .def("torch_tvm.kernels.batched_gemm_prepack", BatchedGemmPrepack)
      .def("torch_tvm.kernels.batched_gemm", BatchedGemm)
      .def("torch_tvm.kernels.embedding", Embedding);
}

}  // namespace torch_tvm::kernels
