#include "convert/registry.h"

#include <set>
#include <stdexcept>

namespace torch_tvm::convert {

const ArgInfo& OpSignature::Arg(size_t i) const {
  if (i >= args.size()) {
    throw std::runtime_error(key + ": argument " + std::to_string(i) + " out of range");
  }
  return args[i];
}

std::optional<c10::IValue> OpSignature::ConstantArg(size_t i) const {
  return i < args.size() ? args[i].constant : std::nullopt;
}

LoweredValue LoweredValue::OfTensor(Expr e) {
  LoweredValue v;
  v.kind = Kind::kTensor;
  v.tensor = std::move(e);
  return v;
}

LoweredValue LoweredValue::OfTensorList(std::vector<Expr> es) {
  LoweredValue v;
  v.kind = Kind::kTensorList;
  v.tensors = std::move(es);
  return v;
}

LoweredValue LoweredValue::OfConstant(c10::IValue c) {
  LoweredValue v;
  v.kind = Kind::kConstant;
  v.constant = std::move(c);
  return v;
}

const LoweredValue& ConvertContext::Input(size_t i) const {
  if (i >= inputs_.size()) {
    throw std::runtime_error(op.key + ": input " + std::to_string(i) + " out of range");
  }
  return inputs_[i];
}

Expr ConvertContext::Tensor(size_t i, const std::string& scalar_dtype) const {
  const auto& v = Input(i);
  if (v.kind == LoweredValue::Kind::kTensor) return v.tensor;
  if (v.kind == LoweredValue::Kind::kConstant) {
    const auto& c = v.constant;
    if (c.isDouble() || c.isInt() || c.isBool()) {
      std::string dtype = scalar_dtype;
      if (dtype.empty()) dtype = c.isDouble() ? "float32" : (c.isBool() ? "bool" : "int64");
      return bb.ScalarConstant(c.toScalar().toDouble(), dtype);
    }
    if (c.isTensor()) return bb.Constant(c.toTensor());
  }
  throw std::runtime_error(op.key + ": input " + std::to_string(i) +
                           " is not a tensor");
}

std::vector<Expr> ConvertContext::TensorList(size_t i) const {
  const auto& v = Input(i);
  if (v.kind == LoweredValue::Kind::kTensorList) return v.tensors;
  if (v.kind == LoweredValue::Kind::kConstant && v.constant.isTensorList()) {
    std::vector<Expr> out;
    for (const at::Tensor& t : v.constant.toTensorVector()) out.push_back(bb.Constant(t));
    return out;
  }
  throw std::runtime_error(op.key + ": input " + std::to_string(i) +
                           " is not a tensor list");
}

std::optional<c10::IValue> ConvertContext::Known(size_t i) const {
  const auto& v = Input(i);
  if (v.kind == LoweredValue::Kind::kConstant) return v.constant;
  if (v.kind == LoweredValue::Kind::kTensor && v.known) return c10::IValue(*v.known);
  return std::nullopt;
}

bool ConvertContext::IsNone(size_t i) const {
  const auto& v = Input(i);
  return v.kind == LoweredValue::Kind::kConstant && v.constant.isNone();
}

const c10::IValue& ConvertContext::Constant(size_t i) const {
  const auto& v = Input(i);
  if (v.kind != LoweredValue::Kind::kConstant) {
    throw std::runtime_error(op.key + ": input " + std::to_string(i) +
                             " must be known at compile time");
  }
  return v.constant;
}

int64_t ConvertContext::Int(size_t i) const { return Constant(i).toInt(); }
double ConvertContext::Double(size_t i) const { return Constant(i).toScalar().toDouble(); }
bool ConvertContext::Bool(size_t i) const { return Constant(i).toBool(); }

std::vector<int64_t> ConvertContext::Ints(size_t i) const {
  const auto& c = Constant(i);
  if (c.isInt()) return {c.toInt()};
  return c.toIntVector();
}

ConverterRegistry& ConverterRegistry::Global() {
  static ConverterRegistry registry;
  return registry;
}

void ConverterRegistry::Register(const std::string& schema, ConvertFn fn, SupportCheckFn check) {
  if (table_.count(schema)) {
    throw std::logic_error("torch_tvm: two converters registered for " + schema);
  }
  table_[schema] = Converter{schema, std::move(fn), std::move(check)};
}

void ConverterRegistry::RegisterCompileTime(const std::string& schema, ConvertFn fn) {
  Register(schema, std::move(fn));
  table_[schema].compile_time = true;
}

void ConverterRegistry::RegisterShapeQuery(const std::string& schema, ConvertFn fn) {
  RegisterCompileTime(schema, std::move(fn));
  table_[schema].shape_query = true;
}

const Converter* ConverterRegistry::Find(const std::string& schema) const {
  auto it = table_.find(schema);
  return it == table_.end() ? nullptr : &it->second;
}

std::vector<std::string> ConverterRegistry::Schemas() const {
  std::vector<std::string> out;
  for (const auto& kv : table_) out.push_back(kv.first);
  return out;
}

static bool IsTensorOrTensorList(const c10::TypePtr& type) {
  if (type->isSubtypeOf(*c10::TensorType::get())) return true;
  if (auto list = type->cast<c10::ListType>()) {
    return list->getElementType()->isSubtypeOf(*c10::TensorType::get());
  }
  return false;
}

bool IsPlumbing(const std::string& key) {
  if (key == "prim::Constant" || key == "prim::ListConstruct" || key == "prim::ListUnpack") {
    return true;
  }
  const Converter* conv = ConverterRegistry::Global().Find(key);
  return conv && conv->compile_time;
}

bool IsShapeQuery(const std::string& key) {
  const Converter* conv = ConverterRegistry::Global().Find(key);
  return conv && conv->shape_query;
}

bool IsPureView(const std::string& key) {
  static const std::set<std::string> views = {
      "aten::slice.Tensor", "aten::select.int", "aten::unbind.int", "aten::narrow", "aten::view",
      "aten::unsqueeze", "aten::squeeze", "aten::squeeze.dim", "aten::squeeze.dims",
      "aten::expand", "aten::expand_as", "aten::view_as", "aten::alias", "aten::detach"};
  return views.count(key) > 0;
}

std::optional<Rejection> CheckSupport(const OpSignature& op) {
  const Converter* conv = ConverterRegistry::Global().Find(op.key);
  if (!conv || !conv->compile_time) {
    for (const auto& type : op.outputs) {
      if (!IsTensorOrTensorList(type)) {
        return Rejection{Rejection::Kind::kNonTensor,
                         op.key + " produces a non-tensor value (" + type->str() +
                             "); scalar and shape arithmetic stays in PyTorch"};
      }
    }
  }
  if (!conv) return Rejection{Rejection::Kind::kNoConverter, "no converter for " + op.key};
  if (conv->check) {
    if (auto why = conv->check(op)) return Rejection{Rejection::Kind::kCheckFailed, *why};
  }
  return std::nullopt;
}

}  // namespace torch_tvm::convert
