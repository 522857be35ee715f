"""enable(target=...): the forms users write, checked before anything compiles.

Accepted forms, all translated to TVM 0.27's JSON form (the only one its
Target parser still takes):
  - a dict:            {"kind": "llvm", "mcpu": "znver3"}
  - TVM's JSON form:   '{"kind": "llvm", "mcpu": "znver3"}'
  - the classic form:  "llvm -mcpu=znver3 -mattr=+avx2,+fma -num-cores=2"
  - a tvm.target.Target.
The kind must be llvm (torch_tvm runs on the CPU). A CPU name LLVM does not
know, or a target that needs an instruction the host cannot execute (an
AVX-512 target on an AVX2 machine), is refused here: the process would
otherwise die on an illegal instruction at the first call. A target without
"vector-width" gets the widest vector its features allow (TVM would assume
512 bits on every x86-64 CPU).
"""
from __future__ import annotations

import json
import platform

import tvm
from tvm.target import codegen

FORMS = ('a dict such as {"kind": "llvm", "mcpu": "znver3"}, its JSON string, '
         'or "llvm -mcpu=znver3 -mattr=+avx2"')

# LLVM x86 feature -> /proc/cpuinfo flag, for the instruction-set extensions a
# kernel may use. Features outside this table are not checked.
_X86_FLAGS = {
    "sse3": "pni", "ssse3": "ssse3", "sse4.1": "sse4_1", "sse4.2": "sse4_2", "avx": "avx",
    "avx2": "avx2", "fma": "fma", "f16c": "f16c", "bmi": "bmi1", "bmi2": "bmi2",
    "avx512f": "avx512f", "avx512bw": "avx512bw", "avx512cd": "avx512cd",
    "avx512dq": "avx512dq", "avx512vl": "avx512vl", "avx512ifma": "avx512ifma",
    "avx512vbmi": "avx512vbmi", "avx512vbmi2": "avx512_vbmi2", "avx512vnni": "avx512_vnni",
    "avx512bitalg": "avx512_bitalg", "avx512vpopcntdq": "avx512_vpopcntdq",
    "avx512bf16": "avx512_bf16", "avx512fp16": "avx512_fp16",
    "avx512vp2intersect": "avx512_vp2intersect", "avxvnni": "avx_vnni",
    "amx-tile": "amx_tile", "amx-int8": "amx_int8", "amx-bf16": "amx_bf16",
    "gfni": "gfni", "vaes": "vaes", "vpclmulqdq": "vpclmulqdq",
}


def _host_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def _parse_classic(text: str) -> dict:
    """"llvm -mcpu=znver3 -mattr=+avx2,+fma -num-cores=2" -> a dict."""
    parts = text.split()
    out: dict = {"kind": parts[0]}
    for part in parts[1:]:
        if not part.startswith("-") or "=" not in part:
            raise ValueError(f"torch_tvm: cannot read {part!r} in target {text!r}; "
                             f"expected -key=value. Valid forms: {FORMS}")
        key, value = part.lstrip("-").split("=", 1)
        if key in ("mattr", "keys", "libs"):
            out[key] = [v for v in value.split(",") if v]
        elif value.lstrip("-").isdigit():
            out[key] = int(value)
        else:
            out[key] = value
    return out


def _as_dict(target) -> dict:
    if isinstance(target, tvm.target.Target):
        return json.loads(str(target))
    if isinstance(target, dict):
        return dict(target)
    if isinstance(target, str):
        text = target.strip()
        if not text:
            raise ValueError(f"torch_tvm: empty target. Valid forms: {FORMS}")
        if text.startswith("{"):
            try:
                out = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError(f"torch_tvm: target is not valid JSON ({e}). "
                                 f"Valid forms: {FORMS}") from None
            if not isinstance(out, dict):
                raise ValueError(f"torch_tvm: a JSON target must be an object. Valid forms: {FORMS}")
            return out
        return _parse_classic(text)
    raise ValueError(f"torch_tvm: target must be a dict, a string or a tvm.target.Target, "
                     f"not {type(target).__name__}. Valid forms: {FORMS}")


def normalize_target(target) -> str:
    """The target as TVM's JSON string, checked against this host; "" for None."""
    if target is None:
        return ""
    spec = _as_dict(target)
    if spec.get("kind") != "llvm":
        raise ValueError(f"torch_tvm runs on the CPU: the target kind must be 'llvm', "
                         f"not {spec.get('kind')!r}. Valid forms: {FORMS}")
    try:
        parsed = tvm.target.Target(spec)
    except Exception as e:  # noqa: BLE001 - TVM raises its own error types
        raise ValueError(f"torch_tvm: TVM refuses the target {spec}: "
                         f"{str(e).strip().splitlines()[-1]}. Valid forms: {FORMS}") from None
    mcpu = spec.get("mcpu")
    triple = spec.get("mtriple") or codegen.llvm_get_system_triple()
    if mcpu and not codegen.llvm_is_valid_cpu(mcpu, triple):
        raise ValueError(f"torch_tvm: LLVM does not know the CPU {mcpu!r} for {triple}")
    features = codegen.llvm_get_cpu_features(parsed)
    flags = _host_flags()
    if flags is not None and platform.machine() in ("x86_64", "AMD64"):
        missing = sorted(f for f in features if f in _X86_FLAGS and _X86_FLAGS[f] not in flags)
        if missing:
            raise ValueError(f"torch_tvm: the target {spec} uses {', '.join(missing)}, which "
                             f"this CPU ({codegen.llvm_get_system_cpu()}) cannot execute")
    if "vector-width" not in spec:
        spec["vector-width"] = 512 if "avx512f" in features else 256 if "avx" in features \
            else 128
    return json.dumps(spec, sort_keys=True)
