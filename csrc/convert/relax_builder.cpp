#include "convert/relax_builder.h"

#include <ATen/ATen.h>
#include <tvm/ffi/reflection/accessor.h>

#include <stdexcept>

#include "common/dlpack_bridge.h"

namespace torch_tvm::convert {

namespace refl = tvm::ffi::reflection;

Array<int64_t> IntArray(const std::vector<int64_t>& values) {
  return Array<int64_t>(values.begin(), values.end());
}

std::string RelaxDType(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default:
      throw std::runtime_error(std::string("dtype ") + c10::toString(type) +
                               " has no Relax equivalent");
  }
}

namespace {

at::ScalarType ScalarTypeOfRelax(const std::string& dtype) {
  for (at::ScalarType t : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                           at::kShort, at::kChar, at::kByte, at::kBool}) {
    if (RelaxDType(t) == dtype) return t;
  }
  throw std::runtime_error("dtype " + dtype + " has no torch equivalent");
}

}  // namespace

RelaxBuilder::RelaxBuilder() : bb_(CallGlobal("relax.BlockBuilderCreate", nullptr)) {}

RelaxBuilder::~RelaxBuilder() {
  try {
    if (block_open_) CallGlobalAny("relax.BlockBuilderEndBlock", bb_);
    if (scope_open_) CallGlobalAny("relax.BlockBuilderEndScope", bb_);
  } catch (...) {  // NOLINT(bugprone-empty-catch): a destructor must not throw
  }
}

Expr RelaxBuilder::Param(const std::string& name, const std::vector<int64_t>& shape,
                         const std::string& dtype) {
  auto shape_expr = CallGlobal("relax.ShapeExpr", IntArray(shape), nullptr);
  auto type = CallGlobal("relax.TensorType", shape_expr, dtype, -1, nullptr, nullptr);
  auto var = CallGlobal("ir.Var", name, type, nullptr);
  params_.push_back(var);
  return var;
}

void RelaxBuilder::BeginFunction(const std::vector<Expr>& params) {
  params_ = params;
  CallGlobalAny("relax.BlockBuilderBeginScope", bb_, Array<ObjectRef>(params.begin(), params.end()));
  scope_open_ = true;
  CallGlobalAny("relax.BlockBuilderBeginDataflowBlock", bb_);
  block_open_ = true;
}

Expr RelaxBuilder::Emit(const Expr& value) {
  return CallGlobal("relax.BlockBuilderEmit", bb_, value, String(""));
}

ObjectRef RelaxBuilder::Finish(const std::vector<Expr>& outputs) {
  Expr result = outputs.size() == 1 ? outputs[0] : Emit(Tuple(outputs));
  Expr out = CallGlobal("relax.BlockBuilderEmitOutput", bb_, result, String(""));
  ObjectRef block = CallGlobal("relax.BlockBuilderEndBlock", bb_);
  block_open_ = false;
  ObjectRef seq = CallGlobal("relax.SeqExpr", Array<ObjectRef>{block}, out, nullptr);
  Array<ObjectRef> params(params_.begin(), params_.end());
  seq = CallGlobal("relax.BlockBuilderNormalize", bb_, seq);
  tvm::ffi::Map<String, Any> attr_map;
  attr_map.Set("global_symbol", String("main"));
  ObjectRef attrs = CallGlobal("ffi.MakeObjectFromPackedArgs", String("ir.DictAttrs"),
                               String("__dict__"), attr_map);
  ObjectRef func = CallGlobal("relax.Function", params, seq, nullptr, true, attrs, nullptr);
  CallGlobalAny("relax.BlockBuilderEndScope", bb_);
  scope_open_ = false;
  CallGlobalAny("relax.BlockBuilderAddFunction", bb_, func, String("main"));
  return CallGlobal("relax.BlockBuilderFinalize", bb_);
}

Expr RelaxBuilder::Constant(const at::Tensor& value) {
  at::Tensor dense = NeedsCopyForTvm(value) ? value.contiguous().clone() : value;
  return CallGlobal("relax.MakeTensorConst", ToTvm(dense.detach()), nullptr, nullptr);
}

Expr RelaxBuilder::ScalarConstant(double value, const std::string& dtype) {
  auto t = at::scalar_tensor(value, at::TensorOptions().dtype(at::kDouble));
  if (dtype == "float32") t = t.to(at::kFloat);
  else if (dtype == "float16") t = t.to(at::kHalf);
  else if (dtype == "bfloat16") t = t.to(at::kBFloat16);
  else if (dtype == "int64") t = t.to(at::kLong);
  else if (dtype == "int32") t = t.to(at::kInt);
  else if (dtype == "bool") t = t.to(at::kBool);
  else if (dtype == "int16") t = t.to(at::kShort);
  else if (dtype == "int8") t = t.to(at::kChar);
  else if (dtype == "uint8") t = t.to(at::kByte);
  else if (dtype != "float64") throw std::runtime_error("no scalar constant of dtype " + dtype);
  return CallGlobal("relax.MakeTensorConst", ToTvm(t.clone()), nullptr, nullptr);
}

Expr RelaxBuilder::FloatImm(double value, const std::string& dtype) {
  return CallGlobal("ir.FloatImm", dtype, value, nullptr);
}

Expr RelaxBuilder::CallExtern(const std::string& name, const std::vector<Expr>& args,
                              const std::vector<int64_t>& out_shape,
                              const std::string& out_dtype) {
  auto func = CallGlobal("relax.ExternFunc", String(name), nullptr, nullptr);
  auto shape = CallGlobal("relax.ShapeExpr", IntArray(out_shape), nullptr);
  auto type = CallGlobal("relax.TensorType", shape, out_dtype, -1, nullptr, nullptr);
  return Op("call_pure_packed", func, Array<ObjectRef>(args.begin(), args.end()), nullptr,
            Array<ObjectRef>{type});
}

Expr RelaxBuilder::CallExternTuple(const std::string& name, const std::vector<Expr>& args,
                                   const std::vector<OutputType>& outs) {
  if (outs.size() < 2) throw std::runtime_error(name + ": CallExternTuple needs two outputs or more");
  auto func = CallGlobal("relax.ExternFunc", String(name), nullptr, nullptr);
  // Several type arguments make call_pure_packed's type the tuple of them.
  Array<ObjectRef> types;
  for (const auto& [shape, dtype] : outs) {
    types.push_back(CallGlobal("relax.TensorType", CallGlobal("relax.ShapeExpr", IntArray(shape),
                                                              nullptr),
                               dtype, -1, nullptr, nullptr));
  }
  std::vector<int64_t> declared;
  for (const auto& out : outs) {
    declared.push_back(static_cast<int64_t>(ScalarTypeOfRelax(out.second)));
    declared.push_back(static_cast<int64_t>(out.first.size()));
    declared.insert(declared.end(), out.first.begin(), out.first.end());
  }
  Array<ObjectRef> call_args(args.begin(), args.end());
  call_args.push_back(Constant(at::tensor(declared, at::kLong)));
  return Op("call_pure_packed", func, call_args, nullptr, types);
}

Expr RelaxBuilder::Tuple(const std::vector<Expr>& fields) {
  return CallGlobal("relax.Tuple", Array<ObjectRef>(fields.begin(), fields.end()), nullptr);
}

Expr RelaxBuilder::IntTuple(const std::vector<int64_t>& values) {
  std::vector<Expr> fields;
  for (int64_t v : values) fields.push_back(CallGlobal("ir.IntImm", String("int64"), v, nullptr));
  return Tuple(fields);
}

Expr RelaxBuilder::Shape(const std::vector<int64_t>& values) {
  return CallGlobal("relax.ShapeExpr", IntArray(values), nullptr);
}

Expr RelaxBuilder::TupleGetItem(const Expr& tuple, int64_t index) {
  return Emit(CallGlobal("relax.TupleGetItem", tuple, index, nullptr));
}

TensorInfo RelaxBuilder::InfoOf(const Expr& expr) const {
  static const refl::FieldGetter shape_of("relax.TensorType", "shape");
  static const refl::FieldGetter dtype_of("relax.TensorType", "dtype");
  static const refl::FieldGetter ndim_of("relax.TensorType", "ndim");
  static const refl::FieldGetter values_of("relax.expr.ShapeExpr", "values");
  static const refl::FieldGetter prim_dtype_of("ir.PrimType", "dtype");
  static const refl::FieldGetter int_value_of("ir.IntImm", "value");

  ObjectRef type = CallGlobal("ir.ExprType", expr);
  if (std::string(type->GetTypeKey()) != "relax.TensorType") {
    throw std::runtime_error(std::string("expected a tensor expression, got type ") +
                             type->GetTypeKey());
  }
  TensorInfo info;
  Any dtype = dtype_of(type);
  if (auto prim = dtype.try_cast<ObjectRef>()) {
    info.dtype = tvm::ffi::DLDataTypeToString(prim_dtype_of(*prim).cast<DLDataType>());
  } else {
    info.dtype = tvm::ffi::DLDataTypeToString(dtype.cast<DLDataType>());
  }
  auto shape = shape_of(type).cast<tvm::ffi::Optional<ObjectRef>>();
  if (shape.has_value() && std::string((*shape)->GetTypeKey()) == "relax.expr.ShapeExpr") {
    for (const auto& dim : values_of(*shape).cast<Array<ObjectRef>>()) {
      if (std::string(dim->GetTypeKey()) == "ir.IntImm") {
        info.shape.push_back(int_value_of(dim).cast<int64_t>());
      } else {
        info.shape.push_back(-1);
      }
    }
  } else {
    info.shape.assign(ndim_of(type).cast<int64_t>(), -1);
  }
  return info;
}

}  // namespace torch_tvm::convert
