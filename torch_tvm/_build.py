"""The TVM build driver, registered as the tvm-ffi global "torch_tvm.build_relax".

TVM's compile pipeline exists only in Python. The C++ group operator calls this
once per new input spec; inference never comes through here.

Pipeline (opt_level >= 1):
  FoldConstant, FoldBatchnormToConv2D   BN into conv weights (weights are constants)
  DecomposeOpsForInference, FoldConstant   remaining BN → elementwise
  ConvertLayout(conv2d → NHWC/OHWI)
  SinkPermutes, FoldConstant              layout permutes (channels-last I/O, ConvertLayout's)
                                          moved below layout-agnostic ops until they cancel
  WinogradConvs                           3x3 stride-1 convs (+bias, residual, relu) as
                                          Winograd F(2,3)/F(4,3) TIR kernels where measured
                                          faster than oneDNN (_winograd)
  OffloadToOneDNN                         conv/linear/matmul → prepacked oneDNN kernels
  ChooseAtenOrTvmKernels                  each norm/softmax to ATen where measured faster
  LegalizeOps with _legalize's rules      vectorisable transcendentals (_fastmath), norms,
                                          softmax and reductions over flat row views; relu,
                                          maximum/minimum and max pooling keep NaN (_nan);
                                          concat of 3+ inputs as one copy block per input
                                          (_concat)
  RewriteDataflowReshape                  reshapes as no-copy views
  AnnotateTIROpPattern, FoldConstant, FuseOps, FuseTIR
  AccumulateResidualInPlace               conv + residual add writes into a dead residual
  --- torch_tvm.tune extracts its MetaSchedule tasks here (_tuning.capture) ---
  ApplyTuningDatabase                     tuned schedules from the databases that match
                                          this host (_tuning)
  default CPU schedules (parallel + vectorised) for every remaining PrimFunc:
                                          _schedule_reduction for reductions, _schedule for the rest
opt_level 0 skips the layout change, offload and schedules (plain TVM lowering), but keeps
the rules that make results match eager (NaN in relu/maximum/minimum/max pooling/max, argmax ties).
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax

from ._aten_choice import choose_kernels
from ._inplace import accumulate_residual_in_place
from ._legalize import legalize_ops, nan_only_legalize_ops
from ._offload import offload_to_onednn
from ._permutes import sink_permutes
from ._schedule import default_cpu_schedule
from . import _tuning, _tvm_convs
from ._tuning import apply_tuning_database, capture
from ._winograd import winograd_convs


def _pipeline(opt_level: int) -> tvm.transform.Pass:
    before, after = _stages(opt_level)
    return tvm.transform.Sequential(before + after)


def _stages(opt_level: int) -> tuple[list, list]:
    """The passes before and after the point where tuning tasks are taken."""
    passes = [relax.transform.FoldConstant()]
    if opt_level >= 1:
        passes += [
            relax.transform.FoldBatchnormToConv2D(),
            relax.transform.DecomposeOpsForInference(),
            relax.transform.FoldConstant(),
            relax.transform.ConvertLayout({"relax.nn.conv2d": ["NHWC", "OHWI"]}),
            sink_permutes,
            relax.transform.FoldConstant(),
            winograd_convs,
            offload_to_onednn,
            choose_kernels,
        ]
    else:
        passes.append(relax.transform.DecomposeOpsForInference())
    passes += [
        legalize_ops() if opt_level >= 1 else nan_only_legalize_ops(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if opt_level < 1:
        return passes, []
    return passes + [accumulate_residual_in_place], [apply_tuning_database,
                                                     default_cpu_schedule()]


@tvm_ffi.register_global_func("torch_tvm.build_relax", override=True)
def build_relax(mod, target, opt_level):
    """[VM executable module, owner of the weights it prepacked].

    The caller keeps the owner exactly as long as the executable; dropping it
    frees the packed weights (also when the build fails half-way).
    """
    tgt = tvm.target.Target(target)
    tvm_ffi.get_global_func("torch_tvm.kernels.begin_packed_weight_scope")()
    try:
        with tgt, tvm.transform.PassContext(opt_level=int(opt_level)):
            ex = tvm.compile(_lower(mod, int(opt_level), tgt), target=tgt)
    finally:
        weights_owner = tvm_ffi.get_global_func("torch_tvm.kernels.end_packed_weight_scope")()
    return [ex.mod, weights_owner]


def _lower(mod, opt_level: int, tgt):
    """The pipeline. It is redone with every conv on oneDNN when a database
    chose TVM for a conv whose fused kernel it has no record of (_tvm_convs):
    the default schedule of a conv is far slower than oneDNN."""
    before, after = _stages(opt_level)
    _tvm_convs.take_left_count()
    lowered = tvm.transform.Sequential(before)(mod.clone())  # passes update modules in place
    capture(lowered, tgt)
    if not after:
        return lowered
    lowered = after[0](lowered)  # ApplyTuningDatabase
    left = _tvm_convs.take_left_count()
    if left and _tvm_convs.has_untuned_conv(lowered):
        _tuning.count("tvm_conv_misses")
        with _tvm_convs.disabled():
            return _lower(mod, opt_level, tgt)
    _tuning.count("tvm_convs", left)
    return tvm.transform.Sequential(after[1:])(lowered)
