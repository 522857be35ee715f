#include "common/ffi_call.h"

#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace torch_tvm {

const Function& GlobalFunc(const std::string& name) {
  static std::mutex mu;
  static std::unordered_map<std::string, Function> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  auto f = Function::GetGlobal(name);
  if (!f.has_value()) {
    throw std::runtime_error("torch_tvm: TVM global function '" + name +
                             "' is not registered; is `import tvm` done and the TVM version "
                             "the pinned one?");
  }
  return cache.emplace(name, *f).first->second;
}

}  // namespace torch_tvm
