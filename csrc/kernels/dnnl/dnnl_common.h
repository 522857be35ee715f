// Shared by the direct oneDNN kernels of this folder (direct_conv.cpp,
// direct_linear.cpp); includes oneDNN's header, so nothing outside this folder
// may include it (the torch include path carries another oneDNN version).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstddef>
#include <unordered_map>
#include <string>
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

// Runs `prim` on `args`, adding the scratchpad it needs, and waits.
void Execute(const dnnl::primitive& prim, std::unordered_map<int, dnnl::memory> args,
             const dnnl::memory::desc& scratch_md, size_t scratch_bytes, const char* what);

}  // namespace torch_tvm::kernels::dnnl_direct::detail
