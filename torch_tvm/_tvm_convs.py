"""TVM's own convolution kernel, tuned by MetaSchedule, as a candidate beside oneDNN.

OffloadToOneDNN hands every constant-weight conv to oneDNN, unless the
tuning database's choice for that conv says "tvm": then the conv stays a
Relax conv2d, is legalised, fused with what follows it (bias, clamp, ...)
and scheduled by the database's record for that fused kernel.

torch_tvm.tune() makes that choice per conv (scope "depthwise", the default,
or "all"):
  1. it compiles the model once more with those convs left to TVM, so that
     MetaSchedule sees the fused conv kernels exactly as the model compiles
     them, and tunes them with the other tasks;
  2. for each such conv it builds a small module, the conv plus the chain of
     elementwise ops that follows it in the model, and times it compiled both
     ways, interleaved: oneDNN (and TVM for the chain) against the tuned TVM
     kernel. TVM must win by `_MARGIN`.
If a compile meets a "tvm" choice whose fused kernel has no record (a model
whose fusion differs from the tuned one), the build is redone with every
conv on oneDNN (stats()["tuning"]["tvm_conv_misses"] counts it): an untuned
TVM conv would be far slower than oneDNN.
"""
from __future__ import annotations

import dataclasses
import threading

import numpy as np
import tvm
from tvm import relax, tirx

from . import _tuning

SCOPES = ("depthwise", "all", "none")
_MARGIN = 0.95
CHAIN_OPS = frozenset({"relax.add", "relax.multiply", "relax.subtract", "relax.maximum",
                       "relax.minimum", "relax.clip", "relax.nn.relu", "relax.sigmoid",
                       "relax.tanh", "relax.nn.silu", "relax.nn.gelu"})

_lock = threading.Lock()
_state = threading.local()
# tune(): Callable[[Sig], bool] while it compiles the candidate kernels, else None.
leave_to_tvm = None
# tune(): every conv left to TVM while collecting: (Sig, conv call, chain of calls).
_left: list | None = None
_decisions: dict[str, dict] = {}


@dataclasses.dataclass(frozen=True)
class Sig:
    n: int
    h: int
    w: int
    c: int
    k: int
    kh: int
    kw: int
    stride: tuple
    pad: tuple
    dilation: tuple
    groups: int
    wc: int = 0  # the weight's input channels (per group)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.c == self.k

    def key(self, threads: int, chain: list[str]) -> str:
        """The choice's key: the conv and the names of the elementwise chain after
        it, so that a choice only applies where the fused kernel is the tuned one."""
        return _tuning.choice_key("conv2d", [self.n, self.h, self.w, self.c, self.k, self.kh,
                                             self.kw, list(self.stride), list(self.pad),
                                             list(self.dilation), self.groups, list(chain)],
                                  threads)


def signature(conv, x) -> Sig | None:
    from ._offload import _shape  # noqa: PLC0415 - import cycle
    a = conv.attrs
    if (a.data_layout != "NHWC" or a.kernel_layout != "OHWI" or a.out_layout != "NHWC"
            or str(conv.ty.dtype) != "float32"):
        return None
    try:
        n, h, w, c = _shape(x)
        k, kh, kw, wc = _shape(conv.args[1])
    except (TypeError, ValueError, AttributeError):
        return None
    return Sig(n, h, w, c, k, kh, kw, tuple(int(s) for s in a.strides),
               tuple(int(p) for p in a.padding), tuple(int(d) for d in a.dilation),
               int(a.groups), wc)


def in_scope(scope: str):
    if scope == "all":
        return lambda sig: True
    if scope == "depthwise":
        return lambda sig: sig.depthwise
    return lambda sig: False


def chain_names(chain) -> list[str]:
    return [call.op.name.split(".")[-1] for call, _ in chain]


def wants_tvm(sig: Sig | None, threads: int, conv=None, chain=None) -> bool:
    """Whether OffloadToOneDNN leaves this conv to TVM. `chain()` gives the
    elementwise chain after the conv (asked only when a database is consulted)."""
    if sig is None or getattr(_state, "disabled", False):
        return False
    if leave_to_tvm is not None:
        return bool(leave_to_tvm(sig))
    if not _tuning.has_choices_for("conv2d"):
        return False
    key = sig.key(threads, chain_names(chain()))
    entry = _tuning.lookup_choice(key)
    if entry is None:
        return False
    _tuning.note_choice(key, entry)
    with _lock:
        _decisions[key] = entry
    if entry.get("kernel") != "tvm":
        return False
    if not hasattr(_state, "left"):
        _state.left = set()
    _state.left.add(conv)  # the rewriter asks once per fusion pattern: count each conv once
    return True


def take_left_count() -> int:
    """Convs this thread left to TVM by a database choice since the last call."""
    n = len(getattr(_state, "left", ()))
    _state.left = set()
    return n


def record_left(sig: Sig, conv, bias, func, value):
    """tune(): remember a conv left to TVM, its bias, and the elementwise chain
    after `value` (the conv, or its bias add) in `func`."""
    with _lock:
        if _left is None:
            return
    _left.append((sig, conv, bias, _chain(func, value)))


def _chain(func, value) -> list:
    """The single-reader chain of elementwise calls with constant other operands after `value`."""
    readers: dict = {}
    bound = {}
    for block in func.body.blocks:
        for b in block.bindings:
            if isinstance(b, relax.VarBinding):
                bound[b.value] = b.var
                if isinstance(b.value, relax.Call):
                    for arg in b.value.args:
                        if isinstance(arg, relax.Var):
                            readers.setdefault(arg, []).append(b.value)
    out, var = [], bound.get(value)
    while var is not None:
        calls = readers.get(var, [])
        if len(calls) != 1:
            break
        call = calls[0]
        if getattr(call.op, "name", None) not in CHAIN_OPS or not all(
                a.same_as(var) or isinstance(a, type(relax.const(0.0))) for a in call.args):
            break
        out.append((call, [i for i, a in enumerate(call.args) if a.same_as(var)]))
        var = bound.get(call)
    return out


def mini_module(sig: Sig, conv, bias, chain) -> tvm.IRModule:
    """x -> conv (+ bias) -> the chain, as the model computes it."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType([sig.n, sig.h, sig.w, sig.c], "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            out = bb.emit(relax.Call(conv.op, [x, conv.args[1]], conv.attrs))
            if bias is not None:
                out = bb.emit(relax.op.add(out, bias))
            for call, positions in chain:
                args = [out if i in positions else a for i, a in enumerate(call.args)]
                out = bb.emit(relax.Call(call.op, args, call.attrs))
            out = bb.emit_output(out)
        bb.emit_func_output(out)
    return bb.get()


def has_untuned_conv(mod) -> bool:
    """A conv2d PrimFunc that no database scheduled (before the default schedules)."""
    for _, func in mod.functions.items():
        if not isinstance(func, tirx.PrimFunc):
            continue
        if func.attrs is not None and func.attrs.get("tirx.is_scheduled", False):
            continue
        if 'T.sblock("conv2d' in func.script() or 'T.sblock("group_conv2d' in func.script():
            return True
    return False


class disabled:
    """Every conv to oneDNN inside the block (this thread)."""

    def __enter__(self):
        self._saved = getattr(_state, "disabled", False)
        _state.disabled = True

    def __exit__(self, *exc):
        _state.disabled = self._saved


def decisions() -> list[dict]:
    with _lock:
        return [dict(d) for d in _decisions.values()]


def random_input(sig: Sig):
    rng = np.random.default_rng(0)
    return tvm.runtime.tensor(rng.standard_normal((sig.n, sig.h, sig.w, sig.c)).astype("float32"))
