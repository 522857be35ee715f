"""to_relax(): the tvm.IRModule torch_tvm would compile for a whole model."""
from __future__ import annotations

import tvm_ffi
import torch

from . import _C


def _frozen_graph(fn_or_module, inputs):
    if isinstance(fn_or_module, torch.jit.ScriptModule):
        return torch.jit.freeze(fn_or_module.eval()).graph
    if isinstance(fn_or_module, torch.jit.ScriptFunction):
        return fn_or_module.graph
    if isinstance(fn_or_module, torch.nn.Module):
        traced = torch.jit.trace(fn_or_module.eval(), tuple(inputs))
        return torch.jit.freeze(traced).graph
    if callable(fn_or_module):
        return torch.jit.trace(fn_or_module, tuple(inputs)).graph
    raise TypeError(f"to_relax: cannot convert {type(fn_or_module).__name__}")


def to_relax(fn_or_module, inputs):
    """Return the tvm.IRModule for `fn_or_module` specialised to `inputs`.

    Accepts an nn.Module (traced), a ScriptModule (frozen), a ScriptFunction
    or a plain function (traced). Raises if any op has no converter.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    with torch.no_grad():
        graph = _frozen_graph(fn_or_module, inputs)
        key = _C.graph_to_relax(graph, [t.detach() for t in inputs])
    return tvm_ffi.get_global_func("torch_tvm._take_handoff")(key)
