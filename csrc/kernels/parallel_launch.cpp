// Runs the parallel loops of TVM-generated code on PyTorch's OpenMP pool.
//
// Generated kernels call __TVMBackendParallelLaunch for every parallel loop.
// By default that is TVM's own thread pool: per calling thread, workers pinned
// to cores and spinning after each region. Next to PyTorch's OpenMP pool
// (which runs the oneDNN kernels of the same graph) that is two pools fighting
// for the same cores, and pinned threads cannot get out of the way of other
// runtimes in the process. Registering this launcher as the context symbol
// before any module loads makes TVM code use the one pool PyTorch already
// has, sized by torch.set_num_threads / enable(num_threads=...).
#include <ATen/Parallel.h>
#include <tvm/ffi/extra/c_env_api.h>

#include "kernels/counters.h"
#include "kernels/parallel_launch.h"

// at::parallel_for is inline: without OpenMP at compile time it runs the whole
// range on the calling thread. CMakeLists.txt compiles this file with -fopenmp
// against torch's own libgomp; refuse to build a silently serial launcher.
#ifndef _OPENMP
#error "parallel_launch.cpp must be compiled with -fopenmp (see CMakeLists.txt)"
#endif
#include <omp.h>

#include <atomic>
#include <cstdint>

namespace torch_tvm::kernels {

namespace {

// Mirrors TVM's c_backend_api.h (not in the tvm-ffi headers we build with).
struct TVMParallelGroupEnv {
  void* sync_handle;
  int32_t num_task;
};
using FTVMParallelLambda = int (*)(int task_id, TVMParallelGroupEnv* penv, void* cdata);

std::atomic<int> parallel_budget{0};

int TorchParallelLaunch(FTVMParallelLambda flambda, void* cdata, int num_task) {
  int budget = parallel_budget.load();
  int n = num_task > 0 ? num_task : (budget > 0 ? budget : at::get_num_threads());
  if (budget > 0 && n > budget) n = budget;
  std::atomic<int> status{0};
  TVMParallelGroupEnv env{nullptr, n};
  // grain 1: each OpenMP thread takes one task id; nested (already parallel)
  // callers run every task in sequence, which the lambdas allow.
  GetCounters().parallel_launches++;
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    if (begin == 0) {  // one thread per region records the team size
      auto& widest = GetCounters().parallel_max_threads;
      int64_t team = omp_get_num_threads(), seen = widest.load();
      while (team > seen && !widest.compare_exchange_weak(seen, team)) {
      }
    }
    for (int64_t task = begin; task < end; ++task) {
      if (flambda(static_cast<int>(task), &env, cdata) != 0) status = -1;
    }
  });
  return status.load();
}

// Task ids may share a thread (see above), so a barrier could deadlock. Our
// schedules never emit one; generated code that does fails the call, and the
// group falls back to PyTorch for that spec.
int TorchParallelBarrier(int /*task_id*/, TVMParallelGroupEnv* /*penv*/) { return -1; }

struct Registrar {
  Registrar() {
    TVMFFIEnvModRegisterContextSymbol("__TVMBackendParallelLaunch",
                                      reinterpret_cast<void*>(&TorchParallelLaunch));
    TVMFFIEnvModRegisterContextSymbol("__TVMBackendParallelBarrier",
                                      reinterpret_cast<void*>(&TorchParallelBarrier));
  }
} registrar;

}  // namespace

void SetParallelBudget(int num_threads) { parallel_budget = num_threads; }

}  // namespace torch_tvm::kernels
