"""explain(): what ran in TVM, what fell back, and why."""
from __future__ import annotations

import dataclasses

import torch

from . import _C, _aten_choice, _linear_choice, _tuning, _tvm_convs, _winograd


@dataclasses.dataclass
class ExplainReport:
    groups: list[dict]          # id, ops, and that group's counters
    outside: list[dict]         # op, decision, reason: nodes left to the PyTorch interpreter
    totals: dict
    eval_version: bool = False  # graph versioned on module.training; the eval version shown
    # TVM or ATen for each norm/softmax shape built in this process (_aten_choice)
    kernel_choices: list[dict] = dataclasses.field(default_factory=list)
    # oneDNN or Winograd for each 3x3 stride-1 conv shape built in this process (_winograd)
    conv_choices: list[dict] = dataclasses.field(default_factory=list)
    # oneDNN or a tuned TVM kernel per conv, from the tuning databases (_tvm_convs)
    tvm_conv_choices: list[dict] = dataclasses.field(default_factory=list)
    # the direct oneDNN inner product or PyTorch's op per linear shape (_linear_choice)
    linear_choices: list[dict] = dataclasses.field(default_factory=list)
    # the tuning databases that apply, and how many tuned kernels/choices they gave
    tuning: dict = dataclasses.field(default_factory=dict)

    @property
    def num_fallbacks(self) -> int:
        return sum(g.get("fallback_calls", 0) for g in self.groups)

    def __str__(self) -> str:
        lines = [f"torch_tvm: {len(self.groups)} TVM group(s), "
                 f"{len(self.outside)} op(s) left to PyTorch"]
        if self.eval_version:
            lines.append("  (unfrozen module: graph versioned on .training; this is the eval "
                         "version, train() runs the original graph)")
        for g in self.groups:
            ops = ", ".join(g["ops"])
            lines.append(f"  group {g['id']}: {len(g['ops'])} ops [{ops}]")
            lines.append(
                f"    calls={g.get('calls', 0)} hits={g.get('cache_hits', 0)} "
                f"misses={g.get('cache_misses', 0)} compiles={g.get('compiles', 0)} "
                f"compile_time={g.get('compile_seconds', 0.0):.2f}s "
                f"fallback_calls={g.get('fallback_calls', 0)} "
                f"over_recompile_limit={g.get('over_recompile_limit', 0)} "
                f"input_copies={g.get('input_copies', 0)}")
            for spec, why in g.get("failures", {}).items():
                lines.append(f"    FALLBACK for spec {spec[:80]}...: {why}")
        for o in self.outside:
            lines.append(f"  outside: {o['op']} [{o['decision']}]: {o['reason']}")
        for c in self.kernel_choices:
            how = "forced" if c["forced"] else \
                f"TVM {c['tvm_us']:.1f} us, ATen {c['aten_us']:.1f} us, " \
                f"{_source(c)}" + \
                ("; ATen needs a 10% lead here: TVM could fuse it" if c["fusible"] else "")
            lines.append(f"  kernel choice: {c['op']}{c['shape']} at {c['threads']} thread(s) "
                         f"-> {c['choice'].upper()} ({how})")
        for c in self.conv_choices:
            n, h, w, ci, k = c["shape"]
            times = ", ".join(f"{name} {us:.1f} us" for name, us in c["times_us"].items())
            how = f"{times}, {_source(c)}" if times else c.get("source", "forced")
            lines.append(f"  kernel choice: conv2d 3x3 {n}x{h}x{w}x{ci}->{k} pad {c['pad']} at "
                         f"{c['threads']} thread(s) -> {c['kernel'].upper()} ({how})")
        for c in self.tvm_conv_choices:
            n, h, w, ci, k = c["shape"]
            kh, kw = c["kernel_size"]
            times = ", ".join(f"{name} {us:.1f} us" for name, us in c["times_us"].items())
            chain = "+".join(c.get("epilogue", [])) or "no epilogue"
            lines.append(f"  kernel choice: conv2d {kh}x{kw}/s{c['stride'][0]} g{c['groups']} "
                         f"{n}x{h}x{w}x{ci}->{k} (+{chain}) at {c['threads']} thread(s) -> "
                         f"{c['kernel'].upper()} ({times}, {_source(c)})")
        for c in self.linear_choices:
            rows, k, n = c["shape"]
            times = ", ".join(f"{name} {us:.1f} us" for name, us in c["times_us"].items())
            how = f"{times}, {_source(c)}" if times else c.get("source", "forced")
            lines.append(f"  kernel choice: linear {rows}x{k}->{n} (+{c['post']}) at "
                         f"{c['threads']} thread(s) -> {c['kernel'].upper()} ({how})")
        if self.tuning:
            dbs = ", ".join(self.tuning["databases"]) or "none"
            lines.append(f"  tuning databases: {dbs}; tuned kernels applied "
                         f"{self.tuning['tuned_kernels_applied']}, kernel choices from databases "
                         f"{self.tuning['choices_from_database']}, TVM convs "
                         f"{self.tuning['tvm_convs']}, TVM conv builds redone on oneDNN "
                         f"{self.tuning['tvm_conv_misses']} (this process)")
        return "\n".join(lines)


def _source(choice: dict) -> str:
    return "from the tuning database" if choice.get("source") == "database" else "measured"


def explain(module, inputs, runs: int = 3) -> ExplainReport:
    """Run `module(*inputs)` under torch_tvm and report its partition.

    The profiling executor optimises on the second call, so the module is run
    `runs` (>= 2) times before the optimised graph is read.
    """
    if not isinstance(inputs, (list, tuple)):
        inputs = (inputs,)
    from ._api import enable, disable, is_enabled
    was_enabled = is_enabled()
    if not was_enabled:
        enable()
    try:
        with torch.no_grad():
            for _ in range(max(2, runs)):
                module(*inputs)
        graph = torch.jit.last_executed_optimized_graph()
    finally:
        if not was_enabled:
            disable()
    info = _C.explain_graph(graph)
    by_id = {g["id"]: g for g in _C.group_stats()}
    groups = []
    for g in info["groups"]:
        merged = dict(by_id.get(g["id"], {}))
        merged["id"] = g["id"]
        merged["ops"] = list(g["ops"])
        groups.append(merged)
    totals = {k: sum(g.get(k, 0) for g in groups)
              for k in ("calls", "cache_hits", "cache_misses", "compiles", "fallback_calls",
                        "over_recompile_limit",
                        "input_copies", "compile_seconds")}
    return ExplainReport(groups=groups, outside=list(info["outside"]), totals=totals,
                         eval_version=bool(info["eval_version"]),
                         kernel_choices=_aten_choice.decisions(),
                         conv_choices=_winograd.decisions(),
                         tvm_conv_choices=_tvm_convs.decisions(),
                         linear_choices=_linear_choice.decisions(), tuning=_tuning.describe())
