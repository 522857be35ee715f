#include "lowering/scatter_view_mutations.h"

#include <torch/csrc/jit/jit_log.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>

#include <algorithm>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace torch_tvm::lowering {

namespace {

using torch::jit::Block;
using torch::jit::Node;
using torch::jit::Value;

// Ops whose output is a new tensor that aliases none of their inputs.
bool IsAllocation(const Node* n) {
  static const std::set<c10::Symbol> kinds = {
      c10::aten::zeros,    c10::aten::zeros_like, c10::aten::new_zeros, c10::aten::ones,
      c10::aten::ones_like, c10::aten::new_ones,  c10::aten::full,      c10::aten::full_like,
      c10::aten::new_full, c10::aten::empty,     c10::aten::empty_like, c10::aten::new_empty,
      c10::aten::clone};
  return kinds.count(n->kind()) > 0 && n->outputs().size() == 1;
}

// Reads of the shape only: they see the same value before and after a write.
bool IsShapeOnly(const Node* n) {
  return n->kind() == c10::aten::size || n->kind() == c10::aten::dim ||
         n->kind() == c10::aten::numel ||
         n->kind() == c10::prim::device || n->kind() == c10::prim::dtype;
}

bool IsViewLink(const Node* n) {
  return n->matches("aten::slice.Tensor(Tensor(a) self, int dim=0, SymInt? start=None, "
                    "SymInt? end=None, SymInt step=1) -> Tensor(a)") ||
         n->matches("aten::select.int(Tensor(a) self, int dim, SymInt index) -> Tensor(a)");
}

// The functional form of an in-place aten op (fill_ -> fill), or a null
// symbol when there is none.
c10::Symbol FunctionalKind(const Node* n) {
  if (!n->kind().is_aten()) return c10::Symbol();
  std::string name = n->kind().toUnqualString();
  if (name.size() < 2 || name.back() != '_' || name[name.size() - 2] == '_') return c10::Symbol();
  return c10::Symbol::aten(name.substr(0, name.size() - 1));
}

// One in-place write: the chain of view links from the base, then the op.
struct Write {
  std::vector<Node*> chain;
  Node* op = nullptr;
};

// Follows `v` (the base or a link) down single-use view links to an in-place
// op writing into it. Returns false if the uses take any other form.
bool FollowChain(Value* v, Block* block, Write& w) {
  if (v->uses().size() != 1) return false;
  Node* user = v->uses()[0].user;
  if (user->owningBlock() != block || v->uses()[0].offset != 0) return false;
  if (IsViewLink(user)) {
    w.chain.push_back(user);
    return FollowChain(user->output(), block, w);
  }
  const c10::FunctionSchema* schema = user->maybeSchema();
  if (!FunctionalKind(user).is_aten() || user->outputs().size() != 1 || !schema ||
      !schema->is_mutable()) {
    return false;
  }
  w.op = user;
  return true;
}

// Whether `base`'s uses allow the rewrite; fills `writes` in node order.
bool Analyse(Value* base, std::vector<Write>& writes) {
  Block* block = base->node()->owningBlock();
  std::vector<Node*> others;
  for (const auto& use : base->uses()) {
    Node* user = use.user;
    if (IsViewLink(user) && use.offset == 0 && user->owningBlock() == block) {
      Write w;
      w.chain.push_back(user);
      if (!FollowChain(user->output(), block, w)) return false;
      writes.push_back(std::move(w));
    } else if (!IsShapeOnly(user)) {
      others.push_back(user);
    }
  }
  if (writes.empty()) return false;
  std::sort(writes.begin(), writes.end(),
            [](const Write& a, const Write& b) { return a.op->isBefore(b.op); });
  // The result of a write is used only as the source of the next write: the
  // `m[a:b] += 1` pattern, traced as `r = add_(m[a:b], 1); m[a:b].copy_(r)`.
  for (size_t i = 0; i < writes.size(); ++i) {
    const auto& uses = writes[i].op->output()->uses();
    if (uses.empty()) continue;
    if (uses.size() != 1 || i + 1 == writes.size() || uses[0].user != writes[i + 1].op ||
        uses[0].offset == 0) {
      return false;
    }
  }
  Node* last = writes.back().op;
  for (Node* user : others) {
    if (user->owningBlock() != block || !user->isAfter(last)) return false;
  }
  // A write must not read the base through any value but its own chain.
  for (const auto& w : writes) {
    for (size_t i = 1; i < w.op->inputs().size(); ++i) {
      Value* in = w.op->inputs()[i];
      if (in == base) return false;
      for (const auto& other : writes) {
        for (Node* link : other.chain) {
          if (in == link->output()) return false;
        }
      }
    }
  }
  return true;
}

// Clones `link` with its first input replaced by `self`, before `at`.
Value* Relink(Node* link, Value* self, Node* at) {
  auto* g = link->owningGraph();
  std::vector<Value*> inputs(link->inputs().begin(), link->inputs().end());
  inputs[0] = self;
  Node* n = g->create(link->kind(), inputs, 1)->insertBefore(at);
  n->output()->setType(link->output()->type());
  return n->output();
}

// slice(self, dim, start, end, step) -> slice_scatter(self, src, dim, start, end, step);
// select(self, dim, index)           -> select_scatter(self, src, dim, index).
Value* Scatter(Node* link, Value* self, Value* src, Node* at) {
  auto* g = link->owningGraph();
  std::vector<Value*> inputs = {self, src};
  for (size_t i = 1; i < link->inputs().size(); ++i) inputs.push_back(link->inputs()[i]);
  const c10::Symbol kind = link->kind() == c10::aten::slice ? c10::aten::slice_scatter
                                                            : c10::aten::select_scatter;
  Node* n = g->create(kind, inputs, 1)->insertBefore(at);
  n->output()->setType(self->type());
  return n->output();
}

// Rewrites the writes into `base`; false (and the graph untouched) if an
// in-place op has no functional schema.
bool Rewrite(Value* base, const std::vector<Write>& writes) {
  auto* g = base->owningGraph();
  for (const auto& w : writes) {  // check every functional form first
    Node* probe = g->create(FunctionalKind(w.op), w.op->inputs(), 1);
    const bool ok = probe->maybeSchema() != nullptr;
    probe->destroy();
    if (!ok) return false;
  }
  Value* cur = base;
  std::unordered_map<Value*, Value*> results;  // a write's output -> its functional value
  for (const auto& w : writes) {
    // Views of the current value, down the chain.
    std::vector<Value*> views = {cur};
    for (Node* link : w.chain) views.push_back(Relink(link, views.back(), w.op));
    std::vector<Value*> inputs(w.op->inputs().begin(), w.op->inputs().end());
    inputs[0] = views.back();
    for (auto& in : inputs) {
      if (auto hit = results.find(in); hit != results.end()) in = hit->second;
    }
    Node* fn = g->create(FunctionalKind(w.op), inputs, 1)->insertBefore(w.op);
    fn->output()->setType(w.chain.back()->output()->type());
    Value* src = fn->output();
    results[w.op->output()] = src;
    for (size_t i = w.chain.size(); i-- > 0;) src = Scatter(w.chain[i], views[i], src, w.op);
    GRAPH_UPDATE("torch_tvm: ", w.op->kind().toQualString(), " into a view of %",
                 base->debugName(), " becomes a functional scatter");
    cur = src;
  }
  Node* last = writes.back().op;
  base->replaceAllUsesAfterNodeWith(last, cur);
  for (auto w = writes.rbegin(); w != writes.rend(); ++w) {
    w->op->destroy();
    for (size_t i = w->chain.size(); i-- > 0;) w->chain[i]->destroy();
  }
  return true;
}

void Run(Block* block) {
  for (auto it = block->nodes().begin(); it != block->nodes().end(); ++it) {
    Node* n = *it;
    for (Block* sub : n->blocks()) Run(sub);
    if (!IsAllocation(n)) continue;
    std::vector<Write> writes;
    if (Analyse(n->output(), writes)) Rewrite(n->output(), writes);
  }
}

}  // namespace

void ScatterViewMutations(const std::shared_ptr<torch::jit::Graph>& graph) {
  Run(graph->block());
  torch::jit::EliminateDeadCode(graph);
  GRAPH_DUMP("torch_tvm after ScatterViewMutations", graph);
}

}  // namespace torch_tvm::lowering
