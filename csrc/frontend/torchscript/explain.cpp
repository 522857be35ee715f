#include "frontend/torchscript/explain.h"

#include "common/group_symbols.h"
#include "frontend/torchscript/decisions.h"
#include "frontend/torchscript/op_signature.h"

namespace torch_tvm::frontend {

using torch::jit::Block;
using torch::jit::Node;

namespace {

bool IsBookkeeping(c10::Symbol kind) {
  return kind == c10::prim::Constant || kind == c10::prim::GetAttr ||
         kind == c10::prim::ListConstruct || kind == c10::prim::ListUnpack ||
         kind == c10::prim::TupleConstruct || kind == c10::prim::TupleUnpack ||
         kind == c10::prim::If || kind == c10::prim::Loop || kind == c10::prim::BailOut ||
         kind == c10::prim::BailoutTemplate || kind == c10::prim::TypeCheck ||
         kind == c10::prim::RequiresGradCheck || kind == c10::prim::profile;
}

GraphReport::Outside Describe(const Node* n) {
  GraphReport::Outside o{SchemaKey(n), "", ""};
  if (auto decided = FindDecision(n)) {
    o.decision = DecisionName(decided->decision);
    o.reason = decided->reason;
  } else if (auto rejection = CheckSupport(n)) {
    // Not seen by the partitioner (the pass was off when this plan was
    // built): the table's answer still holds.
    o.decision = "not_partitioned";
    o.reason = rejection->message;
  } else {
    o.decision = "not_partitioned";
    o.reason = "supported, but left outside: the plan was built without the torch_tvm pass";
  }
  return o;
}

void Walk(Block* block, GraphReport& report) {
  for (Node* n : block->nodes()) {
    if (n->kind() == c10::prim::If && n->hasAttribute(EvalVersionedAttr())) {
      report.eval_version = true;
      Walk(n->blocks()[1], report);
      continue;
    }
    for (Block* sub : n->blocks()) Walk(sub, report);
    if (n->kind() == CompilationGroupKind()) {
      GraphReport::Group g;
      g.id = n->hasAttribute(GroupIdAttr()) ? n->s(GroupIdAttr()) : std::string("?");
      for (const auto* inner : n->g(c10::attr::Subgraph)->nodes()) {
        if (inner->kind() != c10::prim::Constant) g.ops.push_back(SchemaKey(inner));
      }
      report.groups.push_back(std::move(g));
      continue;
    }
    if (!IsBookkeeping(n->kind())) report.outside.push_back(Describe(n));
  }
}

}  // namespace

GraphReport ExplainGraph(const std::shared_ptr<torch::jit::Graph>& graph) {
  GraphReport report;
  Walk(graph->block(), report);
  return report;
}

}  // namespace torch_tvm::frontend
