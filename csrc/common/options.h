// Process-wide settings of torch_tvm, written by enable() and read by every
// stage. Kept in a leaf so no stage has to include a later one to read them.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

namespace torch_tvm {

struct Options {
  bool enabled = false;
  int opt_level = 3;
  bool strict = false;
  // Raise at partition time when an op cannot run in TVM (no converter, or
  // its support check refused the call), naming each such op.
  bool require_full_compilation = false;
  std::string target;    // empty: detect from the host CPU
  int num_threads = 0;   // 0: torch.get_num_threads()
  int64_t cache_size = 16;
  // Distinct input specs a group compiles at most. Past it, a new spec runs
  // in PyTorch (shapes that change with the data, such as a detector's per-
  // class boxes, would otherwise compile on every call). As torch.compile's
  // recompile_limit.
  int64_t recompile_limit = 8;
  int64_t min_group_size = 2;
};

// Snapshot of the current options (copy, so readers never race a writer).
Options GetOptions();
void SetOptions(const Options& options);

// A short, canonical text of everything that changes the compiled code; part
// of every cache key.
std::string CompileSettingsKey(const Options& options);

// The current options with their settings key, shared and immutable: the
// per-call path reads them without copying strings or formatting the key.
struct Settings {
  Options options;
  std::string key;  // CompileSettingsKey(options)
};
std::shared_ptr<const Settings> CurrentSettings();

}  // namespace torch_tvm
