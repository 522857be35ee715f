// Rewrites in-place writes into slices and selects of a freshly allocated
// tensor as functional scatters, so that code such as swin's shifted-window
// mask,
//
//   m = x.new_zeros(H, W)
//   m[0:-7, 0:-7] = 0      # slice(slice(m, 0, ..), 1, ..).fill_(0)
//   m[0:-7, -7:-3] = 1     # ...
//   use(m)
//
// becomes
//
//   m1 = slice_scatter(m, slice_scatter(slice(m, 0, ..), fill(slice(slice(m, 0, ..), 1, ..), 0),
//                                       1, ..), 0, ..)
//   ...
//   use(m9)
//
// and can join a TVM group (where, with static shapes, it constant-folds).
//
// It only fires where the rewrite is exactly equivalent:
//  - the base is the output of an allocation op (zeros, new_zeros, full, empty, clone, ...),
//    so no other value aliases it;
//  - each write is `op_(slice/select chain of the base, args)` with every link of the chain used
//    only by the next link, the in-place op's own output unused, and a functional form
//    (`op` without the underscore) of the same schema;
//  - every other use of the base reads only its shape, or comes after the last write in the
//    same block (those uses are redirected to the final value).
// Anything else is left in place (and so outside TVM groups), as before.
#pragma once

#include <torch/csrc/jit/ir/ir.h>

namespace torch_tvm::lowering {

void ScatterViewMutations(const std::shared_ptr<torch::jit::Graph>& graph);

}  // namespace torch_tvm::lowering
