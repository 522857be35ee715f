// Lowers a straight-line TorchScript graph to a Relax IRModule: walks the
// nodes, hands each converter its op call (op_signature.h) and inputs.
//
// Called at the first run of a group with concrete inputs: tensor inputs
// become Relax parameters with their concrete shapes, or constants when the
// caller binds them (weights); every non-tensor input is a compile-time value.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

#include <vector>

#include "common/ffi_call.h"
#include "common/group_symbols.h"

namespace torch_tvm::frontend {

struct ConvertedGraph {
  ObjectRef ir_module;               // tvm.IRModule with a "main" function
  // Where each Relax parameter comes from, in order: a graph input, and for a
  // runtime tensor list the element (kWholeInput for a plain tensor input);
  // channels_last: passed as the NHWC view of a channels-last NCHW tensor
  // (common/dlpack_bridge.h).
  struct ParamSource {
    size_t input;
    int64_t element;
    bool channels_last;
  };
  static constexpr int64_t kWholeInput = -1;
  std::vector<ParamSource> param_inputs;
  // Per flat Relax output: returned NHWC, handed out as the NCHW view.
  std::vector<bool> channels_last_outputs;
  // For each graph output, how many flat Relax outputs it takes: -1 for a
  // single tensor, n >= 0 for a list of n tensors, kConstantOutput for a value
  // fixed at compile time (taken in order from constant_outputs).
  std::vector<int64_t> output_arity;
  std::vector<c10::IValue> constant_outputs;
  static constexpr int64_t kConstantOutput = -2;
};

// Raises std::runtime_error naming the op when a node cannot be converted.
ConvertedGraph ConvertGraph(const torch::jit::Graph& graph, const std::vector<c10::IValue>& inputs,
                            const std::vector<InputBinding>& bindings);

}  // namespace torch_tvm::frontend
