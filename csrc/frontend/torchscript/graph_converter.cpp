#include "frontend/torchscript/graph_converter.h"

#include <torch/csrc/jit/ir/constants.h>

#include <ATen/core/stack.h>
#include <c10/core/InferenceMode.h>

#include <optional>
#include <stdexcept>
#include <unordered_map>

#include "common/dlpack_bridge.h"
#include "convert/registry.h"
#include "frontend/torchscript/op_signature.h"

namespace torch_tvm::frontend {

using convert::ConverterRegistry;
using convert::Converter;
using convert::ConvertContext;
using convert::LoweredValue;
using convert::RelaxBuilder;
using convert::Expr;
using convert::IntArray;
using convert::RelaxDType;

using torch::jit::Node;
using torch::jit::Value;

namespace {

// A prim::Constant tensor this small (a traced Python scalar such as the `4`
// of `embed_dim // 4`, or the `torch.tensor([k])` of torchvision's
// _topk_min) is a Relax constant and also a compile-time value, so the shape
// arithmetic on it folds. Larger constants (frozen weights) never fold.
constexpr int64_t kMaxKnownConstantElements = 64;

LoweredValue ConstantTensor(RelaxBuilder& bb, const at::Tensor& t) {
  LoweredValue v = LoweredValue::OfTensor(bb.Constant(t));
  if (t.numel() <= kMaxKnownConstantElements) v.known = t;
  return v;
}

// A Tensor[] or a Tensor?[] with at least one tensor: its tensors are data.
bool IsRuntimeTensorList(const c10::IValue& v) {
  if (v.isTensorList()) return true;
  if (!v.isList()) return false;
  bool any = false;
  for (const auto& e : v.toListRef()) {
    if (!e.isTensor() && !e.isNone()) return false;
    any |= e.isTensor();
  }
  return any;
}

// A pure op whose every input is known at compile time (shape arithmetic that
// a traced model does on 0-d tensors: NumToTensor(size) * 2, then Int) is run
// once here with PyTorch's own kernel; its results are compile-time values,
// as for shape plumbing. Weights are Relax constants, not compile-time values,
// so this never runs a layer on them.
std::optional<torch::jit::Stack> FoldAtCompileTime(const Node* node,
                                                   const std::vector<LoweredValue>& inputs) {
  if (inputs.empty()) return std::nullopt;
  torch::jit::Stack stack;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].kind == LoweredValue::Kind::kConstant) {
      stack.push_back(inputs[i].constant);
    } else if (inputs[i].known) {
      stack.push_back(*inputs[i].known);
    } else {
      return std::nullopt;
    }
  }
  const auto* schema = node->maybeSchema();
  if (!schema || schema->is_mutable() || node->isNondeterministic() || node->hasSideEffects()) {
    return std::nullopt;
  }
  c10::InferenceMode guard;
  node->getOperation()(stack);
  if (stack.size() != node->outputs().size()) return std::nullopt;
  return stack;
}

}  // namespace

ConvertedGraph ConvertGraph(const torch::jit::Graph& graph, const std::vector<c10::IValue>& inputs,
                            const std::vector<InputBinding>& bindings) {
  if (inputs.size() != graph.inputs().size()) {
    throw std::runtime_error("graph takes " + std::to_string(graph.inputs().size()) +
                             " inputs, got " + std::to_string(inputs.size()));
  }
  RelaxBuilder bb;
  ConvertedGraph result;
  std::unordered_map<const Value*, LoweredValue> env;

  std::vector<Expr> params;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value* in = graph.inputs()[i];
    const c10::IValue& v = inputs[i];
    auto add_param = [&](const at::Tensor& t, int64_t element) {
      bool channels_last = IsChannelsLastInput(t);
      std::vector<int64_t> shape = t.sizes().vec();
      if (channels_last) shape = {shape[0], shape[2], shape[3], shape[1]};
      std::string name = "in" + std::to_string(i);
      if (element != ConvertedGraph::kWholeInput) name += "_" + std::to_string(element);
      params.push_back(bb.Param(name, shape, RelaxDType(t.scalar_type())));
      result.param_inputs.push_back({i, element, channels_last});
    };
    if (bindings[i] == InputBinding::kValue) {
      continue;  // after the loop below: it stays a compile-time value
    } else if (v.isTensor() && bindings[i] == InputBinding::kRuntime) {
      add_param(v.toTensor(), ConvertedGraph::kWholeInput);
    } else if (IsRuntimeTensorList(v) && bindings[i] == InputBinding::kRuntime) {
      // A list computed at run time: each element is a parameter (baking the
      // values in would go stale: the spec key has shapes, not data). A None
      // of a Tensor?[] (advanced indexing) stays an undefined entry.
      const auto& items = v.toListRef();
      env[in] = LoweredValue::OfTensorList(std::vector<Expr>(items.size()));
      for (size_t k = 0; k < items.size(); ++k) {
        if (items[k].isTensor()) add_param(items[k].toTensor(), static_cast<int64_t>(k));
      }
    } else {
      // Weights and every non-tensor input are baked into the module; the
      // group operator keys its cache on them.
      env[in] = LoweredValue::OfConstant(v);
    }
  }
  bb.BeginFunction(params);
  // Parameters enter the graph as values; channels-last ones through their NCHW permute.
  for (size_t k = 0; k < params.size(); ++k) {
    const auto& src = result.param_inputs[k];
    Expr e = src.channels_last ? bb.Op("permute_dims", params[k], IntArray(kToNchw)) : params[k];
    const Value* in = graph.inputs()[src.input];
    if (src.element == ConvertedGraph::kWholeInput) {
      env[in] = LoweredValue::OfTensor(e);
    } else {
      env[in].tensors.at(src.element) = e;
    }
  }
  for (auto& kv : env) {
    if (kv.second.kind == LoweredValue::Kind::kConstant && kv.second.constant.isTensor()) {
      kv.second = LoweredValue::OfTensor(bb.Constant(kv.second.constant.toTensor()));
    }
  }
  // A 0-d size tensor keeps its value, as prim::NumToTensor's output does
  // inside a group, so aten::Int and the int math on it fold at compile time.
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (bindings[i] == InputBinding::kValue) env[graph.inputs()[i]] = LoweredValue::OfConstant(inputs[i]);
  }

  for (const Node* node : graph.nodes()) {
    if (node->kind() == c10::prim::Constant) {
      auto value = torch::jit::toIValue(node->output());
      if (!value) throw std::runtime_error("unreadable prim::Constant");
      env[node->output()] = value->isTensor() ? ConstantTensor(bb, value->toTensor())
                                              : LoweredValue::OfConstant(*value);
      continue;
    }
    const convert::OpSignature op = Signature(node);
    const std::string& key = op.key;
    const Converter* conv = ConverterRegistry::Global().Find(key);
    if (!conv) throw std::runtime_error("no converter for " + key);
    std::vector<LoweredValue> node_inputs;
    for (const Value* in : node->inputs()) node_inputs.push_back(env.at(in));
    auto attribute_args = AttributeArgs(node);
    for (auto& v : attribute_args) node_inputs.push_back(LoweredValue::OfConstant(v));
    if (!conv->compile_time && attribute_args.empty()) {
      if (auto folded = FoldAtCompileTime(node, node_inputs)) {
        for (size_t i = 0; i < folded->size(); ++i) {
          env[node->outputs()[i]] = LoweredValue::OfConstant((*folded)[i]);
        }
        continue;
      }
    }
    ConvertContext ctx(bb, op, std::move(node_inputs));
    try {
      conv->convert(ctx);
    } catch (const std::exception& e) {
      throw std::runtime_error(key + ": " + e.what());
    }
    for (size_t i = 0; i < node->outputs().size(); ++i) {
      LoweredValue& out = ctx.Outputs()[i];
      if (out.kind == LoweredValue::Kind::kConstant && out.constant.isNone() &&
          node->outputs()[i]->hasUses()) {
        throw std::runtime_error(key + ": converter left output " + std::to_string(i) + " unset");
      }
      env[node->outputs()[i]] = std::move(out);
    }
  }

  std::vector<Expr> flat_outputs;
  for (const Value* out : graph.outputs()) {
    const LoweredValue& v = env.at(out);
    if (v.kind == LoweredValue::Kind::kTensor) {
      // Handed out with the strides eager gave it when the graph was profiled.
      bool channels_last = false;
      if (auto type = out->type()->cast<c10::TensorType>()) {
        auto sizes = type->sizes().concrete_sizes();
        auto strides = type->strides().concrete_sizes();
        channels_last = sizes && strides && IsChannelsLastStrides(*sizes, *strides) &&
                        bb.InfoOf(v.tensor).shape == *sizes;
      }
      flat_outputs.push_back(channels_last ? bb.Op("permute_dims", v.tensor, IntArray(kToNhwc))
                                           : v.tensor);
      result.channels_last_outputs.push_back(channels_last);
      result.output_arity.push_back(-1);
    } else if (v.kind == LoweredValue::Kind::kTensorList) {
      flat_outputs.insert(flat_outputs.end(), v.tensors.begin(), v.tensors.end());
      result.channels_last_outputs.resize(flat_outputs.size(), false);
      result.output_arity.push_back(static_cast<int64_t>(v.tensors.size()));
    } else {
      result.constant_outputs.push_back(v.constant);
      result.output_arity.push_back(ConvertedGraph::kConstantOutput);
    }
  }
  if (flat_outputs.empty()) throw std::runtime_error("graph has no tensor outputs");
  result.ir_module = bb.Finish(flat_outputs);
  return result;
}

}  // namespace torch_tvm::frontend
