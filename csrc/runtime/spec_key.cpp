#include "runtime/spec_key.h"

#include <c10/core/DeviceType.h>

#include <charconv>
#include <cstdint>

#include "common/dlpack_bridge.h"

namespace torch_tvm::runtime {

// Built with plain appends: this runs on every call of every group, and an
// ostringstream (locale facets, a dynamic_cast per insertion) cost about a
// microsecond per key.
namespace {

template <typename T>
void AppendNumber(std::string& out, T value, int base = 10) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, base);
  out.append(buf, end);
}

void AppendDouble(std::string& out, double value) {
  char buf[48];  // hex: exact, so equal keys mean equal values
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::hex);
  out.append(buf, end);
}

void AppendDevice(std::string& out, const c10::Device& device) {
  out += c10::DeviceTypeName(device.type(), /*lower_case=*/true);
  if (device.has_index()) {
    out += ':';
    AppendNumber(out, static_cast<int>(device.index()));
  }
}

void AppendTensor(std::string& out, const at::Tensor& t, bool bound) {
  out += 'T';
  out += c10::toString(t.scalar_type());
  out += '@';
  AppendDevice(out, t.device());
  out += '[';
  for (auto s : t.sizes()) {
    AppendNumber(out, s);
    out += ',';
  }
  out += t.is_contiguous() ? "]c" : IsChannelsLastInput(t) ? "]l" : "]s";
  if (bound) {
    // A weight is compiled in as a constant: the compiled code is only valid
    // for this storage at this version.
    out += "#0x";
    AppendNumber(out, reinterpret_cast<std::uintptr_t>(t.data_ptr()), 16);
    out += 'v';
    AppendNumber(out, static_cast<uint64_t>(t._version()));
  }
}

bool AppendValue(std::string& out, const c10::IValue& v, bool bound) {
  if (v.isTensor()) {
    AppendTensor(out, v.toTensor(), bound);
  } else if (v.isNone()) {
    out += 'N';
  } else if (v.isBool()) {
    out += v.toBool() ? "b1" : "b0";
  } else if (v.isInt()) {
    out += 'i';
    AppendNumber(out, v.toInt());
  } else if (v.isDouble()) {
    out += 'd';
    AppendDouble(out, v.toDouble());
  } else if (v.isString()) {
    const std::string& s = v.toStringRef();
    out += 's';
    AppendNumber(out, s.size());
    out += ':';
    out += s;
  } else if (v.isList()) {
    out += 'L';
    for (const auto& e : v.toListRef()) {
      if (!AppendValue(out, e, bound)) return false;
      out += ',';
    }
    out += ';';
  } else if (v.isDevice()) {
    out += 'D';
    AppendDevice(out, v.toDevice());
  } else {
    return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> SpecKey(const std::vector<c10::IValue>& inputs,
                                   const std::vector<InputBinding>& bindings,
                                   const std::string& settings, std::string* why) {
  std::string key;
  key.reserve(settings.size() + 48 * inputs.size() + 8);
  key += settings;
  key += '|';
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (bindings[i] == InputBinding::kValue) {
      // Shape arithmetic: the compiled code holds this value as a constant.
      if (!inputs[i].isTensor() || inputs[i].toTensor().dim() != 0 ||
          !at::isIntegralType(inputs[i].toTensor().scalar_type(), /*includeBool=*/false)) {
        *why = "input " + std::to_string(i) + " was expected to be a 0-d integer tensor";
        return std::nullopt;
      }
      key += 'v';
      AppendNumber(key, inputs[i].toTensor().item<int64_t>());
    } else if (!AppendValue(key, inputs[i], bindings[i] == InputBinding::kBound)) {
      *why = "input " + std::to_string(i) + " has unsupported type " + inputs[i].tagKind();
      return std::nullopt;
    }
    key += '|';
  }
  return key;
}

}  // namespace torch_tvm::runtime
