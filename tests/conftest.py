"""Shared helpers and fixtures for the torch_tvm Python test-suite.

Every test runs with torch_tvm enabled at its defaults (autouse fixture
``tvm_enabled``) and disabled afterwards. Tests that need other settings call
``torch_tvm.enable(...)`` themselves (it just overwrites the options).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path

# `python -m pytest` from the repository root puts the root on sys.path, which
# would shadow the installed torch_tvm (with its compiled _C) by the source
# tree (without it). Prefer the installed package unless the source tree has
# been built in place.
_REPO = Path(__file__).resolve().parents[1]
if not any((_REPO / "torch_tvm").glob("_C*.so")):
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _REPO]

import pytest  # noqa: E402
import torch  # noqa: E402

import torch_tvm  # noqa: E402

GROUP_KIND = "tvm::CompilationGroup"

# TorchScript is deprecated upstream; its warnings are noise for this suite.
warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning, message=r".*(TorchScript|torch\.jit).*")
warnings.filterwarnings("ignore", category=UserWarning, message=r".*TorchScript.*deprecated.*")


@pytest.fixture(autouse=True, scope="session")
def _no_shipped_tuning():
    """The databases shipped for this host's CPU (torch_tvm/tuning_dbs) would
    change kernel choices depending on the machine the suite runs on; tests of
    them (tests/compile/test_tuning.py) point torch_tvm at their own."""
    from torch_tvm import _tuning
    saved = _tuning.SHIPPED_ROOT
    _tuning.SHIPPED_ROOT = Path("/nonexistent/torch_tvm_tuning_dbs")
    yield
    _tuning.SHIPPED_ROOT = saved


@pytest.fixture(autouse=True)
def tvm_enabled():
    """torch_tvm on with default options for the test, off afterwards."""
    torch_tvm.enable()
    yield
    torch_tvm.disable()
    # Restore default options so the next test does not inherit them.
    torch_tvm.enable()
    torch_tvm.disable()


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


# ----------------------------------------------------------------------------
# graph inspection

def walk_nodes(block_or_graph, into_groups=False):
    """Every node of a graph or block, recursing into nested blocks.

    Group subgraphs are only entered with ``into_groups=True``.
    """
    for n in block_or_graph.nodes():
        yield n
        for b in n.blocks():
            yield from walk_nodes(b, into_groups)
        if into_groups and n.kind() == GROUP_KIND:
            yield from walk_nodes(n.g("Subgraph"), into_groups)


def group_nodes(graph):
    return [n for n in walk_nodes(graph) if n.kind() == GROUP_KIND]


def group_ids(graph):
    return [n.s("tvm_group_id") for n in group_nodes(graph)]


def ops_in_groups(graph):
    """aten/prim kinds of the non-constant nodes inside any group subgraph."""
    out = []
    for g in group_nodes(graph):
        out += [n.kind() for n in g.g("Subgraph").nodes() if n.kind() != "prim::Constant"]
    return out


def _is_tensor_type(t):
    if isinstance(t, torch._C.TensorType):
        return True
    if isinstance(t, (torch._C.ListType, torch._C.OptionalType)):
        return _is_tensor_type(t.getElementType())
    if isinstance(t, torch._C.TupleType):
        return any(_is_tensor_type(e) for e in t.elements())
    return False


# Plumbing nodes that carry tensors around without computing anything.
_PLUMBING = {"prim::Constant", "prim::ListConstruct", "prim::ListUnpack", "prim::TupleConstruct",
             "prim::TupleUnpack", "prim::If", "prim::Loop", "prim::GetAttr", "prim::BailOut",
             "prim::TypeCheck", "prim::RequiresGradCheck", "prim::profile", GROUP_KIND}


def outside_aten_ops(graph):
    """Tensor-producing ops (aten::*, prim::ConstantChunk, ...) left to PyTorch.

    Scalar bookkeeping (aten::size, aten::dim, int arithmetic, ...) that
    produces no tensor is ignored: torch_tvm never groups it.
    """
    return [n.kind() for n in walk_nodes(graph)
            if n.kind() not in _PLUMBING and any(_is_tensor_type(o.type()) for o in n.outputs())]


def group_counters(graph):
    """torch_tvm.stats() entries of the groups present in ``graph``, by id."""
    ids = set(group_ids(graph))
    return {g["id"]: g for g in torch_tvm.stats()["groups"] if g["id"] in ids}


# ----------------------------------------------------------------------------
# running through torch_tvm

def fresh_function(fn):
    """A new function object with ``fn``'s code.

    torch.jit.script caches per function object, so scripting the same
    function twice shares one graph executor (its optimised plan, its groups
    and their compile caches). Tests script a fresh copy to stay independent.
    """
    copy = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__,
                              fn.__closure__)
    copy.__annotations__ = dict(fn.__annotations__)
    copy.__qualname__, copy.__module__ = fn.__qualname__, fn.__module__
    return copy


def jit(fn, inputs, script=False):
    """torch.jit.script (script=True) or torch.jit.trace ``fn`` on ``inputs``."""
    if isinstance(fn, (torch.jit.ScriptFunction, torch.jit.ScriptModule)):
        return fn
    if isinstance(fn, torch.nn.Module):
        fn = fn.eval()
    elif isinstance(fn, types.FunctionType):
        fn = fresh_function(fn)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        if script:
            return torch.jit.script(fn)
        with torch.no_grad():
            return torch.jit.trace(fn, tuple(inputs), check_trace=False)


def run_jitted(module, *inputs, calls=3):
    """Call an already jitted module ``calls`` times; returns (output, graph)."""
    out = None
    with torch.no_grad():
        for _ in range(calls):
            out = module(*inputs)
    return out, torch.jit.last_executed_optimized_graph()


def run_tvm(fn, *inputs, script=False, calls=3, return_graph=False):
    """Jit ``fn``, run it ``calls`` times under no_grad and check it used TVM.

    Returns the last output (and the optimised graph with return_graph=True).
    """
    module = jit(fn, inputs, script=script)
    out, graph = run_jitted(module, *inputs, calls=calls)
    assert GROUP_KIND in str(graph), f"no TVM group was formed:\n{graph}"
    return (out, graph) if return_graph else out


NAN_GUARD_COUNTERS = ("nan_guard_fused_calls", "nan_guard_unfused_calls",
                      "nan_guard_trusted_calls")


def traced_warm(model, x, calls=3):
    """torch.jit.trace(model, x), called ``calls`` times under no_grad (the first
    call profiles, the next compiles), ready for call_counting."""
    traced = torch.jit.trace(model, x)
    with torch.no_grad():
        for _ in range(calls):
            traced(x)
    return traced


def call_counting(module, x, counters=NAN_GUARD_COUNTERS):
    """(output, {counter: increase}) of one no_grad call of an already compiled
    ``module``, for the kernel counters of ``torch_tvm.stats()["kernels"]``."""
    before = torch_tvm.stats()["kernels"]
    with torch.no_grad():
        out = module(x)
    after = torch_tvm.stats()["kernels"]
    return out, {k: after[k] - before[k] for k in counters}


def flatten_outputs(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in flatten_outputs(o)]
    raise TypeError(f"unexpected output type {type(out).__name__}")


def assert_outputs_close(actual, expected, rtol=1e-4, atol=1e-5, equal_nan=False):
    """Same number of outputs, each close (and of the same dtype); with
    ``equal_nan`` a NaN matches a NaN at the same position."""
    a, e = flatten_outputs(actual), flatten_outputs(expected)
    assert len(a) == len(e), f"{len(a)} outputs, expected {len(e)}"
    for i, (x, y) in enumerate(zip(a, e)):
        torch.testing.assert_close(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan,
                                   msg=lambda m: f"output {i}: {m}")


def max_rel_error(actual, expected):
    """max |actual - expected| / max |expected|."""
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def cpu_flags() -> set[str]:
    """The ISA flags /proc/cpuinfo lists for this CPU."""
    with open("/proc/cpuinfo") as f:
        return set(next(line for line in f if line.startswith("flags")).split()[2:])


def sgemm_supported() -> bool:
    """Whether this CPU runs torch_tvm's packed GEMM (AVX2 and FMA)."""
    return {"avx2", "fma"} <= cpu_flags()


def counters_in_subprocess(build: str, counters: list[str], cwd, env: dict | None = None,
                           before_import: str = "") -> list[int]:
    """Runs a model in a fresh Python: `before_import` (after `import torch`),
    `import torch_tvm`, then `build`, which must define `m` (a module in
    eval) and `x` and may call torch_tvm.enable(); traces m, runs it three
    times, checks the last output against eager, and returns the named
    counters (stats()["kernels"] entries, or top-level stats()). From `cwd`,
    not the repository root, where `import torch_tvm` would find the sources
    rather than the installed package."""
    code = "\n".join([
        "import torch", textwrap.dedent(before_import), "import torch_tvm",
        textwrap.dedent(build),
        "with torch.no_grad():",
        "    t = torch.jit.trace(m, x)",
        "    for _ in range(3):",
        "        y = t(x)",
        "    torch.testing.assert_close(y, m(x), rtol=1e-4, atol=1e-5)",
        "s = torch_tvm.stats()",
        f"print(*(s['kernels'].get(n, s.get(n)) for n in {counters!r}))",
    ])
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, **(env or {})), timeout=300, cwd=cwd)
    assert res.returncode == 0, res.stderr[-2000:]
    return [int(v) for v in res.stdout.split()[-len(counters):]]
