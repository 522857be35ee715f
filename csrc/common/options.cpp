#include "common/options.h"

#include <sstream>

namespace torch_tvm {

namespace {
std::mutex& OptionsMutex() {
  static std::mutex mu;
  return mu;
}
std::shared_ptr<const Settings> MakeSettings(const Options& options) {
  return std::make_shared<const Settings>(Settings{options, CompileSettingsKey(options)});
}
std::shared_ptr<const Settings>& SettingsStorage() {
  static std::shared_ptr<const Settings> settings = MakeSettings(Options{});
  return settings;
}
}  // namespace

std::shared_ptr<const Settings> CurrentSettings() {
  std::lock_guard<std::mutex> lock(OptionsMutex());
  return SettingsStorage();
}

Options GetOptions() { return CurrentSettings()->options; }

void SetOptions(const Options& options) {
  auto settings = MakeSettings(options);
  std::lock_guard<std::mutex> lock(OptionsMutex());
  SettingsStorage() = std::move(settings);
}

std::string CompileSettingsKey(const Options& options) {
  std::ostringstream os;
  os << "opt=" << options.opt_level << ";target=" << options.target
     << ";threads=" << options.num_threads;
  return os.str();
}

}  // namespace torch_tvm
