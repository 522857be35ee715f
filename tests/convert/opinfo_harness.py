"""Runs PyTorch OpInfo samples through torch_tvm and classifies each one.

Used by test_opinfo.py. For one OpInfo entry, every float32 CPU sample (the
first ``MAX_SAMPLES``) is turned into a function of its tensor arguments,
traced, run three times with torch_tvm enabled (the profiling executor builds
the optimised plan, with its TVM groups, on the second call) and compared
with eager PyTorch. The optimised graph and torch_tvm's group counters say
what happened to every converter key in the sample's graph:

* ``tvm``: the key's node sits in a group whose third call ran compiled code;
* ``fallback``: the key's node sits in a group that ran PyTorch instead (the
  reason is torch_tvm's UserWarning, or the group's recorded failure);
* ``no group``: the node was left outside any group (the reason is the
  partitioner's decision, read with the API explain() uses), or the
  TorchScript passes removed it before partitioning.

A sample is ``skipped`` when it is random by definition (dropout with p > 0 in
training mode) and ``not traceable`` when torch.jit.trace cannot capture it.
Every run sample's outputs are compared with eager whatever its class.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import re
import warnings

import torch
import torch.nn.functional as F

import torch_tvm
from conftest import GROUP_KIND, flatten_outputs, group_nodes, walk_nodes

# Samples run per OpInfo entry (the first ones, in OpInfo's order): bounds the
# suite's time in CI.
MAX_SAMPLES = 24

# OpInfo's float32 tolerances (torch.testing's defaults for float32).
RTOL, ATOL = 1.3e-6, 1e-5

# OpInfo entries that draw random numbers whatever their arguments.
ALWAYS_RANDOM = {"bernoulli", "normal", "normal.number_mean", "rand_like", "randn_like",
                 "randint_like", "multinomial", "uniform", "nn.functional.rrelu",
                 "cauchy", "exponential", "geometric", "log_normal"}

# Dropout-like entries: random when their probability argument is > 0 and they
# run in training mode. Name -> (probability argument, function whose defaults
# apply). OpInfo wraps these in lambdas, so the defaults are read from the
# torch.nn.functional function itself.
DROPOUT_LIKE = {
    "nn.functional.dropout": ("p", F.dropout),
    "nn.functional.dropout1d": ("p", getattr(F, "dropout1d", None)),
    "nn.functional.dropout2d": ("p", F.dropout2d),
    "nn.functional.dropout3d": ("p", F.dropout3d),
    "nn.functional.alpha_dropout": ("p", F.alpha_dropout),
    "nn.functional.feature_alpha_dropout": ("p", F.feature_alpha_dropout),
    "nn.functional.scaled_dot_product_attention": ("dropout_p", None),
}


def random_reason(op, sample):
    """Why ``sample`` of ``op`` is random by definition, or None."""
    if op.name in ALWAYS_RANDOM:
        return f"{op.name} draws random numbers"
    if op.name not in DROPOUT_LIKE:
        return None
    p_name, fn = DROPOUT_LIKE[op.name]
    bound = None
    if fn is not None:
        try:
            bound = inspect.signature(fn).bind(sample.input, *sample.args, **sample.kwargs)
            bound.apply_defaults()
        except (TypeError, ValueError):
            bound = None
    if bound is not None:
        p, training = bound.arguments.get(p_name, 0.0), bound.arguments.get("training", True)
    else:  # scaled_dot_product_attention: dropout_p is keyword-only, default 0
        p, training = sample.kwargs.get(p_name, 0.0), True
    if float(p) > 0 and training:
        return f"random by definition: {p_name}={p} in training mode"
    return None


# ----------------------------------------------------------------------------
# samples as traceable functions

class _Slot:
    """Placeholder for the i-th tensor input inside a sample's arguments."""
    __slots__ = ("i",)

    def __init__(self, i):
        self.i = i


def _extract(value, tensors):
    if isinstance(value, torch.Tensor):
        tensors.append(value)
        return _Slot(len(tensors) - 1)
    if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
        return type(value)(_extract(v, tensors) for v in value)
    return value


def _fill(value, tensors):
    if isinstance(value, _Slot):
        return tensors[value.i]
    if isinstance(value, (list, tuple)) and any(isinstance(v, _Slot) for v in value):
        return type(value)(_fill(v, tensors) for v in value)
    return value


def sample_function(op, sample):
    """(fn, tensors): fn(*tensors) calls ``op`` on the sample's arguments.

    Tensors (also inside lists and tuples) become inputs; everything else is
    a constant captured by the closure.
    """
    tensors = []
    template = (_extract(sample.input, tensors), _extract(list(sample.args), tensors),
                {k: _extract(v, tensors) for k, v in sample.kwargs.items()})
    call = op.op

    def fn(*ts):
        inp, args, kwargs = (_fill(template[0], ts), _fill(template[1], ts),
                             {k: _fill(v, ts) for k, v in template[2].items()})
        return call(inp, *args, **kwargs)

    return fn, tensors


def _describe_value(v):
    if isinstance(v, torch.Tensor):
        dt = "" if v.dtype == torch.float32 else f":{str(v.dtype).replace('torch.', '')}"
        return f"T{list(v.shape)}{dt}"
    if isinstance(v, (list, tuple)):
        inner = ", ".join(_describe_value(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else f"({inner}{',' if len(v) == 1 else ''})"
    if isinstance(v, float) and not math.isfinite(v):
        return f"float('{v}')"
    return repr(v)


def describe_sample(sample):
    parts = [_describe_value(sample.input)] + [_describe_value(a) for a in sample.args]
    parts += [f"{k}={_describe_value(v)}" for k, v in sample.kwargs.items()]
    return "(" + ", ".join(parts) + ")"


def node_key(node):
    """The converter table's key for a node (torch_tvm's SchemaKey)."""
    schema = node.schema()
    if schema == "(no schema)":
        return node.kind()
    return schema.split("(", 1)[0]


# ----------------------------------------------------------------------------
# running one sample

@dataclasses.dataclass
class SampleResult:
    index: int
    desc: str
    status: str                    # tvm | fallback | no_group | skipped | not_traceable | error
    reason: str = ""
    traced_keys: frozenset = frozenset()          # schema keys in the traced graph
    optimized_keys: frozenset = frozenset()       # schema keys in the optimised graph
    tvm_keys: frozenset = frozenset()             # in groups whose 3rd call ran compiled code
    fallback_keys: dict = dataclasses.field(default_factory=dict)   # key -> reason
    outside_keys: dict = dataclasses.field(default_factory=dict)    # key -> reason
    unwarned_fallbacks: list = dataclasses.field(default_factory=list)  # group ids
    mismatch: str | None = None    # how the outputs differ from eager, if they do
    max_abs: float = 0.0
    max_rel: float = 0.0

    def key_status(self, key):
        """(status, reason) of the converter key ``key`` in this sample.

        Besides the sample-wide classes: ``rewritten`` when the traced graph
        has the key but TorchScript's passes replaced it before partitioning,
        ``not_exercised`` when the sample's graph never had it.
        """
        if self.status in ("skipped", "not_traceable", "error"):
            return self.status, self.reason
        if key in self.fallback_keys:
            return "fallback", self.fallback_keys[key]
        if key in self.outside_keys:
            return "no_group", self.outside_keys[key]
        if key in self.tvm_keys:
            return "tvm", ""
        if key in self.traced_keys:
            new = sorted(self.optimized_keys - self.traced_keys)
            return "rewritten", ("TorchScript's passes rewrote it before partitioning"
                                 + (f" (into {', '.join(new)})" if new else " (removed)"))
        return "not_exercised", ""


def short_reason(text):
    """torch_tvm's fallback message without the group id, C++ location and
    TVM's dump of the failing ir.Op."""
    text = re.sub(r"^torch_tvm: group \S+ falls back to PyTorch: ", "", text)
    text = re.sub(r"\s*\(Triggered internally at [^)]*\)", "", text)
    text = re.sub(r"In ir\.Op\(.*?support_level=\d+\),\s*", "", text)
    return " ".join(text.split())


def _errors(actual, expected):
    """(max abs error, max rel error) ignoring positions equal in value or both NaN."""
    a, e = actual.detach().double(), expected.detach().double()
    if a.shape != e.shape or a.numel() == 0:
        return float("nan"), float("nan")
    same = (a == e) | (a.isnan() & e.isnan())
    diff = (a - e).abs().masked_fill(same, 0.0)
    diff = torch.where(diff.isnan(), torch.full_like(diff, float("inf")), diff)
    rel = diff / e.abs().clamp_min(1e-30)
    return diff.max().item(), rel.max().item()


# Ops whose result holds uninitialised memory in eager (torch_tvm gives
# zeros): only their dtype and shape can be compared, as OpInfo's own tests do.
UNSPECIFIED_VALUES = frozenset({"empty", "empty_like", "new_empty", "new_empty_strided",
                                "empty_strided", "empty_permuted"})


def compare(actual, expected, rtol, atol, values=True):
    """None if ``actual`` matches ``expected`` (dtype, shape, values with NaN
    at the same positions; values only when ``values``), else (message, max
    abs error, max rel error)."""
    try:
        a, e = flatten_outputs(actual), flatten_outputs(expected)
    except TypeError as exc:
        return f"unexpected output: {exc}", float("nan"), float("nan")
    if len(a) != len(e):
        return f"{len(a)} outputs, eager has {len(e)}", float("nan"), float("nan")
    worst_abs = worst_rel = 0.0
    messages = []
    for i, (x, y) in enumerate(zip(a, e)):
        if x.dtype != y.dtype or x.shape != y.shape:
            messages.append(f"output {i}: {x.dtype}{list(x.shape)}, eager {y.dtype}{list(y.shape)}")
            continue
        if not values:
            continue
        try:
            torch.testing.assert_close(x, y, rtol=rtol, atol=atol, equal_nan=True)
        except AssertionError as exc:
            ea, er = _errors(x, y)
            worst_abs, worst_rel = max(worst_abs, ea), max(worst_rel, er)
            first = str(exc).strip().splitlines()
            messages.append(f"output {i}: " + " ".join(s.strip() for s in first[:4]))
    if not messages:
        return None
    return "; ".join(messages), worst_abs, worst_rel


def _first_line(exc, n=200):
    lines = str(exc).strip().splitlines()
    return lines[0][:n] if lines else ""


def _clone(v):
    if isinstance(v, torch.Tensor):
        return v.clone()
    if isinstance(v, (list, tuple)) and any(isinstance(x, torch.Tensor) for x in v):
        return type(v)(_clone(x) for x in v)
    return v


def _trace(fn, tensors):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        return torch.jit.trace(fn, tuple(t.clone() for t in tensors), check_trace=False)


def _fails_without_torch_tvm(fn, tensors):
    """The error, if the traced module also raises with torch_tvm off."""
    options = torch_tvm._C.get_options()
    torch_tvm.disable()
    try:
        module = _trace(fn, tensors)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            for _ in range(3):
                module(*[t.clone() for t in tensors])
        return None
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {_first_line(exc)}"
    finally:
        torch_tvm.enable(opt_level=options["opt_level"], strict=options["strict"],
                         cache_size=options["cache_size"],
                         min_group_size=options["min_group_size"])


def _fallback_reason(group_id, warns, counters):
    """(reason, warned): torch_tvm's warning for the group, else its recorded failure."""
    tag = f"group {group_id} falls back"
    msgs = sorted({short_reason(str(w.message)) for w in warns if tag in str(w.message)})
    if msgs:
        return " | ".join(msgs), True
    failures = sorted({short_reason(why) for why in counters.get("failures", {}).values()})
    if failures:
        return " | ".join(failures), False
    return "fell back without a warning or a recorded failure", False


def run_sample(op, sample, index, tolerances=(RTOL, ATOL)):
    """Trace, run through torch_tvm, classify and compare one sample."""
    desc = describe_sample(sample)
    why_random = random_reason(op, sample)
    if why_random:
        return SampleResult(index, desc, "skipped", why_random)

    fn, tensors = sample_function(op, sample)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # eager's own warnings are not the subject
            expected = op.op(_clone(sample.input), *[_clone(a) for a in sample.args],
                             **{k: _clone(v) for k, v in sample.kwargs.items()})
    except Exception as exc:  # noqa: BLE001  nothing to compare against
        return SampleResult(index, desc, "skipped",
                            f"eager PyTorch raised {type(exc).__name__}: {_first_line(exc)}")
    # Outputs must be tensors (or tuples/lists of them) to be traced.
    try:
        flatten_outputs(expected)
    except TypeError as exc:
        return SampleResult(index, desc, "not_traceable", f"output: {exc}")

    try:
        module = _trace(fn, tensors)
    except Exception as exc:  # noqa: BLE001  any trace failure
        return SampleResult(index, desc, "not_traceable",
                            f"{type(exc).__name__}: {_first_line(exc)}")
    traced_keys = frozenset(node_key(n) for n in walk_nodes(module.graph)
                            if n.kind() != "prim::Constant")

    inputs = [t.clone() for t in tensors]
    with warnings.catch_warnings(record=True) as warns, torch.no_grad():
        warnings.simplefilter("always")
        try:
            for _ in range(2):
                module(*inputs)
            before = {g["id"]: g for g in torch_tvm.stats()["groups"]}
            out = module(*inputs)
            graph = torch.jit.last_executed_optimized_graph()
        except Exception as exc:  # noqa: BLE001
            plain = _fails_without_torch_tvm(fn, tensors)
            if plain is not None:
                return SampleResult(index, desc, "not_traceable", "the traced module raises "
                                    f"without torch_tvm too: {plain}", traced_keys=traced_keys)
            return SampleResult(index, desc, "error", "the traced module raised under "
                                f"torch_tvm: {type(exc).__name__}: {_first_line(exc, 300)}",
                                traced_keys=traced_keys)

    info = torch_tvm._C.explain_graph(graph)  # what torch_tvm.explain() reads
    ids = {n.s("tvm_group_id") for n in group_nodes(graph)}
    after = {g["id"]: g for g in torch_tvm.stats()["groups"] if g["id"] in ids}
    tvm_keys, fallback_keys, outside_keys, unwarned = set(), {}, {}, []
    for g in info["groups"]:
        now, then = after.get(g["id"], {}), before.get(g["id"], {})
        calls = now.get("calls", 0) - then.get("calls", 0)
        fallbacks = now.get("fallback_calls", 0) - then.get("fallback_calls", 0)
        if calls > 0 and fallbacks == 0:
            tvm_keys.update(g["ops"])
        elif calls > 0:
            reason, warned = _fallback_reason(g["id"], warns, now)
            if not warned:
                unwarned.append(g["id"])
            for k in g["ops"]:
                fallback_keys.setdefault(k, reason)
        else:
            for k in g["ops"]:
                outside_keys.setdefault(k, "group formed but not called (type guard failed)")
    for o in info["outside"]:
        outside_keys.setdefault(o["op"], f"[{o['decision']}] {o['reason']}")
    optimized_keys = frozenset(node_key(n) for n in walk_nodes(graph, into_groups=True)
                               if n.kind() not in ("prim::Constant", GROUP_KIND))

    if fallback_keys:
        status = "fallback"
    elif tvm_keys:
        status = "tvm"
    else:
        status = "no_group"
    result = SampleResult(index, desc, status, "", traced_keys, optimized_keys,
                          frozenset(tvm_keys), fallback_keys, outside_keys, unwarned)
    bad = compare(out, expected, *tolerances, values=op.name not in UNSPECIFIED_VALUES)
    if bad is not None:
        result.mismatch, result.max_abs, result.max_rel = bad
    return result


def sample_list(op, max_samples=MAX_SAMPLES):
    """The first ``max_samples`` float32 CPU samples of ``op`` (seeded)."""
    torch.manual_seed(0)
    samples = []
    for s in op.sample_inputs("cpu", torch.float32, requires_grad=False):
        samples.append(s)
        if len(samples) == max_samples:
            break
    return samples


def supports_float32_cpu(op):
    return torch.float32 in op.supported_dtypes("cpu")
