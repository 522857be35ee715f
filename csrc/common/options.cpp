#include "common/options.h"

#include <sstream>

namespace torch_tvm {

namespace {
std::mutex& OptionsMutex() {
  static std::mutex mu;
  return mu;
}
Options& OptionsStorage() {
  static Options options;
  return options;
}
}  // namespace

Options GetOptions() {
  std::lock_guard<std::mutex> lock(OptionsMutex());
  return OptionsStorage();
}

void SetOptions(const Options& options) {
  std::lock_guard<std::mutex> lock(OptionsMutex());
  OptionsStorage() = options;
}

std::string CompileSettingsKey(const Options& options) {
  std::ostringstream os;
  os << "opt=" << options.opt_level << ";target=" << options.target
     << ";threads=" << options.num_threads;
  return os.str();
}

}  // namespace torch_tvm
