// The converter table: aten operator name (with overload) -> Relax lowering.
//
// One table serves every front door. TorchScript nodes and aten-level FX nodes
// carry the same schema names ("aten::add.Tensor"), so a converter is written
// once and looked up by that name. Each op family registers its converters
// from its own file in ops/ through TORCH_TVM_CONVERTERS.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "convert/op_call.h"
#include "convert/relax_builder.h"

namespace torch_tvm::convert {

// What a TorchScript value is during conversion: a Relax tensor, a list of
// Relax tensors, or a value known at compile time (ints, floats, lists, None).
struct LoweredValue {
  enum class Kind { kTensor, kTensorList, kConstant };
  Kind kind = Kind::kConstant;
  Expr tensor;
  std::vector<Expr> tensors;
  c10::IValue constant;
  // A kTensor whose value is also known at compile time: a small constant
  // tensor of the graph (the `torch.tensor([k])` of traced shape math). The
  // shape arithmetic folds through it; everything else sees `tensor`.
  std::optional<at::Tensor> known;

  static LoweredValue OfTensor(Expr e);
  static LoweredValue OfTensorList(std::vector<Expr> es);
  static LoweredValue OfConstant(c10::IValue v);
};

// Gives a converter its op call's inputs and takes its outputs.
class ConvertContext {
 public:
  ConvertContext(RelaxBuilder& bb, const OpSignature& op, std::vector<LoweredValue> inputs)
      : bb(bb), op(op), inputs_(std::move(inputs)), outputs_(op.NumOutputs()) {}

  RelaxBuilder& bb;
  const OpSignature& op;

  size_t NumInputs() const { return inputs_.size(); }
  const LoweredValue& Input(size_t i) const;
  // Input i as a tensor. A compile-time scalar becomes a 0-d constant of
  // `scalar_dtype` (or float32/int64 by its kind when empty).
  Expr Tensor(size_t i, const std::string& scalar_dtype = "") const;
  std::vector<Expr> TensorList(size_t i) const;
  bool IsTensor(size_t i) const { return Input(i).kind == LoweredValue::Kind::kTensor; }
  bool IsNone(size_t i) const;
  // Input i's value when known at compile time: a compile-time value, or a
  // small constant tensor of the graph (LoweredValue::known).
  std::optional<c10::IValue> Known(size_t i) const;
  const c10::IValue& Constant(size_t i) const;
  int64_t Int(size_t i) const;
  double Double(size_t i) const;
  bool Bool(size_t i) const;
  std::vector<int64_t> Ints(size_t i) const;
  TensorInfo Info(size_t i) const { return bb.InfoOf(Tensor(i)); }

  void SetOutput(size_t i, Expr e) { outputs_.at(i) = LoweredValue::OfTensor(std::move(e)); }
  // A value known at compile time (shape arithmetic: aten::size, int math).
  void SetOutputConstant(size_t i, c10::IValue v) {
    outputs_.at(i) = LoweredValue::OfConstant(std::move(v));
  }
  void SetOutputList(size_t i, std::vector<Expr> es) {
    outputs_.at(i) = LoweredValue::OfTensorList(std::move(es));
  }
  std::vector<LoweredValue>& Outputs() { return outputs_; }

 private:
  std::vector<LoweredValue> inputs_;
  std::vector<LoweredValue> outputs_;
};

using ConvertFn = std::function<void(ConvertContext&)>;
// Static check used by the partitioner: returns a reason when a call of a
// supported operator still cannot be converted (e.g. dropout in training).
using SupportCheckFn = std::function<std::optional<std::string>(const OpSignature&)>;

struct Converter {
  std::string schema;  // "aten::add.Tensor"
  ConvertFn convert;
  SupportCheckFn check;
  // Computes non-tensor values at compile time (shape plumbing such as
  // aten::size feeding a view). Such nodes never form a group on their own.
  bool compile_time = false;
  // Reads only its inputs' shapes (aten::size, aten::_shape_as_tensor): its
  // result is known at compile time whatever the inputs' data.
  bool shape_query = false;
};

class ConverterRegistry {
 public:
  static ConverterRegistry& Global();
  void Register(const std::string& schema, ConvertFn fn, SupportCheckFn check = nullptr);
  void RegisterCompileTime(const std::string& schema, ConvertFn fn);
  void RegisterShapeQuery(const std::string& schema, ConvertFn fn);
  const Converter* Find(const std::string& schema) const;
  std::vector<std::string> Schemas() const;

 private:
  std::map<std::string, Converter> table_;
};

// True for list plumbing and compile-time scalar ops: grouped only together
// with real compute, never counted towards a group's size.
bool IsPlumbing(const std::string& key);

// True for compile-time ops that read only shapes (Converter::shape_query).
bool IsShapeQuery(const std::string& key);

// True for ops whose eager result is always a view of their input (slice,
// select, view, squeeze/unsqueeze, expand...): free in PyTorch, a copy in TVM.
// A group of nothing else is not worth forming. permute/transpose are not
// here: a reshape or contiguous after them copies in eager too.
bool IsPureView(const std::string& key);

// Why a call cannot go into a TVM group, typed, or nullopt when it can.
struct Rejection {
  enum class Kind {
    kNoConverter,  // no entry in the table
    kNonTensor,    // produces a scalar/shape value that stays in PyTorch
    kCheckFailed,  // the entry's support check refused these arguments
  };
  Kind kind;
  std::string message;
};
std::optional<Rejection> CheckSupport(const OpSignature& op);

// Registers the converters of one op family at library load.
struct ConverterRegistrar {
  explicit ConverterRegistrar(void (*fn)(ConverterRegistry&)) { fn(ConverterRegistry::Global()); }
};

#define TORCH_TVM_CONVERTERS(family)                                   \
  static void RegisterConverters_##family(::torch_tvm::convert::ConverterRegistry&); \
  static ::torch_tvm::convert::ConverterRegistrar converter_registrar_##family(      \
      &RegisterConverters_##family);                                   \
  static void RegisterConverters_##family(::torch_tvm::convert::ConverterRegistry& reg)

}  // namespace torch_tvm::convert
