// The cache key of one call of a group: the full input spec plus the compile
// settings. It is a canonical string (no pointers except for bound weights) so
// that a later on-disk cache can reuse it.
#pragma once

#include <ATen/core/ivalue.h>

#include "common/group_symbols.h"

#include <optional>
#include <string>
#include <vector>

namespace torch_tvm::runtime {

// Returns nullopt (with `why` set) when an input has a type the key cannot
// describe exactly; such a call must fall back.
std::optional<std::string> SpecKey(const std::vector<c10::IValue>& inputs,
                                   const std::vector<InputBinding>& bindings,
                                   const std::string& settings, std::string* why);

}  // namespace torch_tvm::runtime
