"""The TVM build driver, registered as the tvm-ffi global "torch_tvm.build_relax".

TVM's compile pipeline exists only in Python. The C++ group operator calls this
once per new input spec; inference never comes through here.
"""
from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax


def _pipeline() -> tvm.transform.Pass:
    # tvm.compile's default CPU pipeline does no fusion; run it explicitly.
    return tvm.transform.Sequential(
        [
            relax.transform.DecomposeOpsForInference(),
            relax.transform.LegalizeOps(),
            relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(),
            relax.transform.FuseOps(),
            relax.transform.FuseTIR(),
        ]
    )


@tvm_ffi.register_global_func("torch_tvm.build_relax", override=True)
def build_relax(mod, target, opt_level):
    tgt = tvm.target.Target(target)
    with tgt, tvm.transform.PassContext(opt_level=int(opt_level)):
        mod = _pipeline()(mod)
        ex = tvm.compile(mod, target=tgt)
    return ex.mod
