// See specialize_eval_mode.h. Logging: PYTORCH_JIT_LOG_LEVEL=">specialize_eval_mode".
#include "lowering/specialize_eval_mode.h"

#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <optional>
#include <set>
#include <unordered_map>

#include "common/group_symbols.h"

namespace torch_tvm::lowering {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

namespace {

bool IsModule(const Value* v) {
  auto cls = v->type()->cast<c10::ClassType>();
  return cls && cls->is_module();
}

// Attribute names from `self` to the module `v`, or nullopt when `v` is not
// reached from `self` by module GetAttrs alone.
std::optional<std::vector<std::string>> PathFromSelf(Value* v, Value* self) {
  std::vector<std::string> path;
  while (v != self) {
    Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr || !IsModule(n->input())) return std::nullopt;
    path.push_back(n->s(c10::attr::name));
    v = n->input();
  }
  return std::vector<std::string>(path.rbegin(), path.rend());
}

bool IsTrainingFlag(const Node* n) {
  return n->kind() == c10::prim::GetAttr && n->s(c10::attr::name) == "training" &&
         IsModule(n->input());
}

// Every training flag read in `block` and its sub-blocks (inside an If or a
// Loop too) becomes `no`.
void ClearFlags(Block* block, Value* no) {
  for (Node* n : block->nodes()) {
    for (Block* sub : n->blocks()) ClearFlags(sub, no);
    if (IsTrainingFlag(n)) n->output()->replaceAllUsesWith(no);
  }
}

struct Scan {
  std::vector<Node*> flags;   // prim::GetAttr[name="training"] on a module
  bool unsafe = false;        // sets attributes or calls out: flags could change mid-graph
  bool versioned = false;
};

void ScanBlock(Block* block, Scan& scan) {
  for (Node* n : block->nodes()) {
    auto kind = n->kind();
    if (kind == c10::prim::SetAttr || kind == c10::prim::CallMethod ||
        kind == c10::prim::CallFunction) {
      scan.unsafe = true;
    }
    if (n->hasAttribute(EvalVersionedAttr())) scan.versioned = true;
    if (IsTrainingFlag(n)) scan.flags.push_back(n);
    for (Block* sub : n->blocks()) ScanBlock(sub, scan);
  }
}

// Clones `body` (nodes of the graph's top block) into `target`.
void CloneInto(Graph& graph, const std::vector<Node*>& body, Block* target) {
  std::unordered_map<Value*, Value*> map;
  auto env = [&](Value* v) {
    auto it = map.find(v);
    return it == map.end() ? v : it->second;
  };
  for (Node* n : body) {
    Node* copy = target->appendNode(graph.createClone(n, env));
    for (size_t i = 0; i < n->outputs().size(); ++i) map[n->output(i)] = copy->output(i);
  }
  for (Value* out : graph.outputs()) target->registerOutput(env(out));
}

bool Version(const std::shared_ptr<Graph>& graph) {
  if (graph->inputs().empty() || !IsModule(graph->inputs()[0])) return false;
  Value* self = graph->inputs()[0];
  Scan scan;
  ScanBlock(graph->block(), scan);
  if (scan.flags.empty() || scan.unsafe || scan.versioned) return false;

  // One read per distinct module path, in the order first used.
  std::set<std::vector<std::string>> seen;
  std::vector<std::vector<std::string>> paths;
  for (Node* flag : scan.flags) {
    auto path = PathFromSelf(flag->input(), self);
    if (!path) return false;
    if (seen.insert(*path).second) paths.push_back(*path);
  }

  Block* top = graph->block();
  std::vector<Node*> body(top->nodes().begin(), top->nodes().end());

  // Guard: any(flag), read before anything else runs.
  Value* any_training = nullptr;
  {
    torch::jit::WithInsertPoint insert(top->nodes().front());
    for (const auto& path : paths) {
      Value* module = self;
      for (const auto& name : path) {
        module = graph->insertNode(graph->createGetAttr(module, name))->output();
      }
      Value* flag = graph->insertNode(graph->createGetAttr(module, "training"))->output();
      any_training = any_training ? graph->insert(c10::aten::__or__, {any_training, flag})
                                  : flag;
    }
  }

  Node* version = graph->create(c10::prim::If, {any_training}, graph->outputs().size());
  version->i_(EvalVersionedAttr(), 1);
  for (size_t i = 0; i < graph->outputs().size(); ++i) {
    version->output(i)->setType(graph->outputs()[i]->type());
  }
  top->appendNode(version);
  Block* training = version->addBlock();
  Block* eval = version->addBlock();
  CloneInto(*graph, body, training);
  CloneInto(*graph, body, eval);
  {
    // Flags read inside nested blocks are cloned with their block, so they
    // are found by walking the copy, not by a map of top-level values.
    torch::jit::WithInsertPoint at_eval_start(eval->nodes().front());
    ClearFlags(eval, graph->insertConstant(false));
  }
  for (size_t i = 0; i < graph->outputs().size(); ++i) top->replaceOutput(i, version->output(i));
  for (auto it = body.rbegin(); it != body.rend(); ++it) (*it)->destroy();

  std::shared_ptr<Graph> g = graph;
  torch::jit::ConstantPropagation(g, /*ignore_custom_classes=*/true);
  torch::jit::EliminateDeadCode(g);
  return true;
}

}  // namespace

bool SpecializeEvalMode(std::shared_ptr<Graph>& graph) {
  std::shared_ptr<Graph> copy = graph->copy();
  try {
    if (!Version(copy)) return false;
  } catch (const std::exception& e) {
    TORCH_WARN("torch_tvm: eval-mode specialisation skipped: ", e.what());
    return false;
  }
  graph = copy;
  GRAPH_DUMP("torch_tvm after SpecializeEvalMode", graph);
  return true;
}

}  // namespace torch_tvm::lowering
