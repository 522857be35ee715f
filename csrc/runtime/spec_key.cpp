#include "runtime/spec_key.h"

#include <sstream>

#include "common/dlpack_bridge.h"

namespace torch_tvm::runtime {

namespace {

void AppendTensor(std::ostringstream& os, const at::Tensor& t, bool bound) {
  os << 'T' << c10::toString(t.scalar_type()) << '@' << t.device() << '[';
  for (auto s : t.sizes()) os << s << ',';
  os << (t.is_contiguous() ? "]c" : IsChannelsLastInput(t) ? "]l" : "]s");
  if (bound) {
    // A weight is compiled in as a constant: the compiled code is only valid
    // for this storage at this version.
    os << "#" << t.data_ptr() << 'v' << t._version();
  }
}

bool AppendValue(std::ostringstream& os, const c10::IValue& v, bool bound) {
  if (v.isTensor()) {
    AppendTensor(os, v.toTensor(), bound);
  } else if (v.isNone()) {
    os << 'N';
  } else if (v.isBool()) {
    os << 'b' << v.toBool();
  } else if (v.isInt()) {
    os << 'i' << v.toInt();
  } else if (v.isDouble()) {
    os << 'd' << std::hexfloat << v.toDouble() << std::defaultfloat;
  } else if (v.isString()) {
    os << 's' << v.toStringRef().size() << ':' << v.toStringRef();
  } else if (v.isList()) {
    os << 'L';
    for (const auto& e : v.toListRef()) {
      if (!AppendValue(os, e, bound)) return false;
      os << ',';
    }
    os << ';';
  } else if (v.isDevice()) {
    os << 'D' << v.toDevice();
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> SpecKey(const std::vector<c10::IValue>& inputs,
                                   const std::vector<bool>& bind_as_constant,
                                   const std::string& settings, std::string* why) {
  std::ostringstream os;
  os << settings << '|';
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!AppendValue(os, inputs[i], bind_as_constant[i])) {
      *why = "input " + std::to_string(i) + " has unsupported type " + inputs[i].tagKind();
      return std::nullopt;
    }
    os << '|';
  }
  return os.str();
}

}  // namespace torch_tvm::runtime
