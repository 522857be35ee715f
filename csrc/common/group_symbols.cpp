#include "common/group_symbols.h"

namespace torch_tvm {

c10::Symbol CompilationGroupKind() {
  static const auto kind = c10::Symbol::fromQualString("tvm::CompilationGroup");
  return kind;
}
c10::Symbol GroupIdAttr() {
  static const auto attr = c10::Symbol::attr("tvm_group_id");
  return attr;
}
c10::Symbol BoundInputsAttr() {
  static const auto attr = c10::Symbol::attr("tvm_bound_inputs");
  return attr;
}

c10::Symbol ValueInputsAttr() {
  static const auto attr = c10::Symbol::attr("tvm_value_inputs");
  return attr;
}

c10::Symbol EvalVersionedAttr() {
  static const c10::Symbol s = c10::Symbol::attr("tvm_eval_versioned");
  return s;
}

}  // namespace torch_tvm
