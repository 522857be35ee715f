#include "frontend/torchscript/op_signature.h"

#include <torch/csrc/jit/ir/constants.h>

namespace torch_tvm::frontend {

using torch::jit::Node;

std::string SchemaKey(const Node* node) {
  if (const auto* schema = node->maybeSchema()) {
    const auto& name = schema->operator_name();
    return name.overload_name.empty() ? name.name : name.name + "." + name.overload_name;
  }
  return node->kind().toQualString();
}

std::vector<c10::IValue> AttributeArgs(const Node* node) {
  if (node->kind() == c10::prim::ConstantChunk) {
    return {node->i(c10::attr::chunks), node->i(c10::attr::dim)};
  }
  return {};
}

convert::OpSignature Signature(const Node* node) {
  convert::OpSignature op;
  op.key = SchemaKey(node);
  for (const auto* in : node->inputs()) {
    op.args.push_back({in->type(), torch::jit::toIValue(in)});
  }
  for (auto& v : AttributeArgs(node)) op.args.push_back({v.type(), v});
  for (const auto* out : node->outputs()) op.outputs.push_back(out->type());
  return op;
}

std::optional<convert::Rejection> CheckSupport(const Node* node) {
  return convert::CheckSupport(Signature(node));
}

std::optional<std::string> UnsupportedReason(const Node* node) {
  auto rejection = CheckSupport(node);
  if (!rejection) return std::nullopt;
  return rejection->message;
}

bool IsPlumbing(const Node* node) { return convert::IsPlumbing(SchemaKey(node)); }

bool IsPureView(const Node* node) { return convert::IsPureView(SchemaKey(node)); }

}  // namespace torch_tvm::frontend
