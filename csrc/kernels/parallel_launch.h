// TVM's parallel loops on PyTorch's OpenMP pool (see parallel_launch.cpp).
#pragma once

namespace torch_tvm::kernels {

// The most threads one TVM parallel loop may use (0: torch.get_num_threads()).
void SetParallelBudget(int num_threads);

}  // namespace torch_tvm::kernels
