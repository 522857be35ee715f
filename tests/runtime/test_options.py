"""enable() checks every option when it is given (issue: options accepted
silently, then every group fell back at its first call)."""
from __future__ import annotations

import json

import pytest
import torch
import tvm

import torch_tvm
from torch_tvm import _targets
from conftest import run_tvm


def _host():
    return torch_tvm._C.host_cpu()


@pytest.mark.parametrize("form", [
    lambda cpu: {"kind": "llvm", "mcpu": cpu},
    lambda cpu: json.dumps({"kind": "llvm", "mcpu": cpu}),
    lambda cpu: f"llvm -mcpu={cpu}",
    lambda cpu: f"llvm -mcpu={cpu} -num-cores=2",
    lambda cpu: tvm.target.Target({"kind": "llvm", "mcpu": cpu}),
])
def test_every_target_form_compiles_and_runs(form):
    torch_tvm.enable(target=form(_host()))
    stored = json.loads(torch_tvm._C.get_options()["target"])
    assert stored["kind"] == "llvm" and stored["mcpu"] == _host()
    assert stored["vector-width"] == torch_tvm._C.host_vector_width()
    fn = lambda x: torch.relu(x * 2.0) + 1.0  # noqa: E731
    x = torch.randn(4, 33)
    before = torch_tvm.stats()
    torch.testing.assert_close(run_tvm(fn, x), fn(x))
    after = torch_tvm.stats()
    assert after["compiles"] > before["compiles"]
    assert after["fallback_calls"] == before["fallback_calls"]
    assert after["compile_failures"] == before["compile_failures"]


def test_classic_form_reads_mattr_and_numbers():
    spec = _targets._parse_classic("llvm -mcpu=x86-64 -mattr=+sse4.2,+avx -num-cores=4")
    assert spec == {"kind": "llvm", "mcpu": "x86-64", "mattr": ["+sse4.2", "+avx"],
                    "num-cores": 4}


@pytest.mark.parametrize("target, message", [
    ("garbage", "kind must be 'llvm'"),
    ({"kind": "llvm", "no-such-attribute": 1}, "TVM refuses the target"),
    ("cuda", "kind must be 'llvm'"),
    ({"kind": "llvm", "mcpu": "notacpu"}, "does not know the CPU"),
    ('{"kind": "llvm", ', "not valid JSON"),
    ("llvm mcpu=znver3", "expected -key=value"),
    (42, "must be a dict, a string"),
    ("", "empty target"),
])
def test_bad_targets_are_refused_with_the_valid_forms(target, message):
    with pytest.raises(ValueError, match=message):
        torch_tvm.enable(target=target)


def test_target_the_host_cannot_execute_is_refused():
    flags = _targets._host_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo on this host")
    # A feature this host lacks, requested through mattr; every x86 CPU lacks
    # at least one of these.
    missing = [f for f in ("avx512fp16", "amx-tile", "avx512vp2intersect", "avx512f")
               if _targets._X86_FLAGS[f] not in flags]
    assert missing, "this host has every feature probed"
    target = {"kind": "llvm", "mcpu": "x86-64", "mattr": [f"+{missing[0]}"]}
    with pytest.raises(ValueError, match="cannot execute"):
        torch_tvm.enable(target=target)


@pytest.mark.parametrize("kwargs, message", [
    ({"opt_level": 7}, "opt_level must be between 0 and 3"),
    ({"opt_level": -1}, "opt_level must be between 0 and 3"),
    ({"opt_level": 2.5}, "opt_level must be an int"),
    ({"cache_size": 0}, "cache_size must be >= 1"),
    ({"min_group_size": 0}, "min_group_size must be >= 1"),
    ({"num_threads": 0}, "num_threads must be >= 1"),
    ({"num_threads": True}, "num_threads must be an int"),
    ({"strict": "yes"}, "strict must be True or False"),
    ({"winograd": "on"}, "winograd must be one of 'auto', 'off', 'F2', 'F4'"),
    ({"winograd": True}, "winograd must be one of"),
])
def test_bad_options_are_refused(kwargs, message):
    before = torch_tvm._C.get_options()
    with pytest.raises(ValueError, match=message):
        torch_tvm.enable(**kwargs)
    assert torch_tvm._C.get_options() == before  # nothing was applied
    assert torch_tvm._winograd.mode == "auto"


def _with_unsupported_op(x):
    # aten::cosh has no converter (and no plan to get one): it stays in PyTorch.
    return torch.cosh(torch.relu(x) * 2.0 + 1.0) - 1.0


def _only_plumbing_outside(x):
    y = torch.relu(x) * 2.0 + 1.0
    return y.view(x.size(0), -1)  # aten::size: shape arithmetic, not an op TVM lacks


def test_require_full_compilation_names_every_op_tvm_cannot_take():
    torch_tvm.enable(require_full_compilation=True)
    x = torch.randn(2, 8)
    module = torch.jit.trace(_with_unsupported_op, x)
    with pytest.raises(RuntimeError, match=r"require_full_compilation=True, but 1 op\(s\) cannot "
                                           r"run in TVM:\s+aten::cosh \[unsupported_op\]"):
        for _ in range(3):
            module(x)


def test_require_full_compilation_accepts_a_graph_whose_compute_all_runs_in_tvm():
    torch_tvm.enable(require_full_compilation=True)
    x = torch.randn(2, 4, 3)
    module = torch.jit.trace(_only_plumbing_outside, x)
    before = torch_tvm.stats()["fallback_calls"]
    for _ in range(3):
        out = module(x)
    torch.testing.assert_close(out, _only_plumbing_outside(x))
    assert torch_tvm.stats()["fallback_calls"] == before


def test_require_full_compilation_must_be_a_bool():
    with pytest.raises(ValueError, match="require_full_compilation must be True or False"):
        torch_tvm.enable(require_full_compilation=1)
