// The neutral view of one op call: what converters and support checks see.
//
// A front door builds it (frontend/torchscript from a torch::jit::Node today;
// an FX or exported-program importer next), so the converter table serves
// every front door as it is: nothing in convert/ reads a graph.
#pragma once

#include <ATen/core/ivalue.h>
#include <ATen/core/jit_type.h>

#include <optional>
#include <string>
#include <vector>

namespace torch_tvm::convert {

struct ArgInfo {
  // The static type: Tensor (with its profiled dtype and shape when the front
  // door knows them), int, float, bool, str, a list, None...
  c10::TypePtr type;
  // The value, when it is known before the first call (a constant).
  std::optional<c10::IValue> constant;
  // For a list built element by element where the front door can see it (a
  // prim::ListConstruct feeding the call): one entry per element, so a check
  // can read each element's dtype (a boolean mask among an index's indices).
  // Empty when the list's elements are not known one by one.
  std::vector<ArgInfo> elements;
};

struct OpSignature {
  std::string key;                     // schema name with overload: "aten::add.Tensor"
  std::vector<ArgInfo> args;           // positional, schema defaults filled in
  std::vector<c10::TypePtr> outputs;   // one type per output

  size_t NumOutputs() const { return outputs.size(); }
  // Argument i; throws std::runtime_error naming the op when out of range.
  const ArgInfo& Arg(size_t i) const;
  // Argument i's value when known before the first call, else nullopt.
  std::optional<c10::IValue> ConstantArg(size_t i) const;
};

}  // namespace torch_tvm::convert
