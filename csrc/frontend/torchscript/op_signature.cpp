#include "frontend/torchscript/op_signature.h"

#include <torch/csrc/jit/ir/constants.h>

#include "common/group_symbols.h"

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

namespace {

// The prim::ListConstruct that built `v`, looking into a compilation group
// when the list was merged into one (the partitioner asks again after merges).
const Node* ListProducer(const torch::jit::Value* v) {
  for (int depth = 0; depth < 8; ++depth) {
    const Node* p = v->node();
    if (p->kind() == c10::prim::ListConstruct) return p;
    if (p->kind() != CompilationGroupKind()) return nullptr;
    v = p->g(c10::attr::Subgraph)->outputs().at(v->offset());
  }
  return nullptr;
}

}  // namespace

convert::OpSignature Signature(const Node* node) {
  convert::OpSignature op;
  op.key = SchemaKey(node);
  for (const auto* in : node->inputs()) {
    convert::ArgInfo arg{in->type(), torch::jit::toIValue(in), {}};
    if (const Node* list = ListProducer(in)) {
      for (const auto* e : list->inputs()) {
        arg.elements.push_back({e->type(), torch::jit::toIValue(e), {}});
      }
    }
    op.args.push_back(std::move(arg));
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

bool IsShapeQuery(const Node* node) { return convert::IsShapeQuery(SchemaKey(node)); }

}  // namespace torch_tvm::frontend
