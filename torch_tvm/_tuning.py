"""Tuning databases: MetaSchedule records and measured kernel choices, keyed
on the host they were measured on.

A database is a directory:
  torch_tvm_key.json           the host it belongs to (KEY_FIELDS) and what made it
  choices.json                 measured kernel choices (oneDNN / Winograd / ATen / TVM)
                               by op signature and thread budget, with the times
  database_workload.json,      MetaSchedule's JSON database, pruned: the best record of
  database_tuning_record.json  each TVM kernel that beat its default schedule
  search/                      torch_tvm.tune's full MetaSchedule logs, for resuming
                               (never needed to apply the database, never shipped)

MetaSchedule's lookup ignores the target (apache/tvm#15549), so a record
tuned on one CPU would be applied on any other. torch_tvm therefore keys
every database on the host CPU (the mcpu LLVM reports, the ISA flags, the
core count) and on the TVM version: a database for another host is skipped
with one warning, and its kernels get the default schedules.

Which databases apply, first match first (a later one fills only the gaps):
  1. `with torch_tvm.tuning_database(DIR):` (innermost first)
  2. enable(tuning_db=DIR)
  3. the environment variable TORCH_TVM_TUNING_DB (paths separated by ':')
  4. the databases shipped in torch_tvm/tuning_dbs/, when they match the host
     (enable(shipped_tuning=False) turns them off).
Groups already compiled keep their code: a database applies at the next compile.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import warnings
from pathlib import Path

import tvm

FORMAT = 1
KEY_FILE = "torch_tvm_key.json"
CHOICES_FILE = "choices.json"
MS_WORKLOADS = "database_workload.json"
MS_RECORDS = "database_tuning_record.json"
SEARCH_DIR = "search"
SHIPPED_ROOT = Path(__file__).parent / "tuning_dbs"
ENV = "TORCH_TVM_TUNING_DB"
KEY_FIELDS = ("format", "mcpu", "isa", "cores", "tvm")

_lock = threading.RLock()
option_path: str | None = None      # enable(tuning_db=)
use_shipped = True                  # enable(shipped_tuning=)
_stack: list[str] = []              # tuning_database(...) contexts
_exclusive: list[str] | None = None  # tune(): only its own work_dir applies
_opened: dict[tuple, "TuningDatabase"] = {}
_warned: set[str] = set()
# Counters since the process started (stats()["tuning"]).
# choices_from_database: distinct kernel choices taken from a database;
# tvm_convs: convs compiled as tuned TVM kernels by a database choice (_tvm_convs);
# tvm_conv_misses: builds redone on oneDNN because such a conv had no record.
counters = {"tuned_kernels_applied": 0, "choices_from_database": 0, "tvm_convs": 0,
            "tvm_conv_misses": 0}
_counted_choices: set[str] = set()
# Choices used by compiles while tune() collects (key -> entry), else None.
_collecting: dict[str, dict] | None = None
# Modules (before the schedules) compiled while tune() collects, with their target.
_captured: list | None = None


@functools.lru_cache(maxsize=1)
def _host_key() -> str:
    from tvm.target import codegen  # noqa: PLC0415

    from ._targets import _X86_FLAGS, _host_flags  # noqa: PLC0415
    flags = _host_flags() or set()
    return json.dumps({"format": FORMAT, "mcpu": codegen.llvm_get_system_cpu(),
                       "isa": sorted(f for f, flag in _X86_FLAGS.items() if flag in flags),
                       "cores": os.cpu_count(), "tvm": tvm.__version__})


def host_key() -> dict:
    """This host, as a database key (read once per process)."""
    return json.loads(_host_key())


def mismatch(key: dict, host: dict) -> str | None:
    """Why a database keyed `key` does not belong to `host`, or None."""
    for field in KEY_FIELDS:
        if key.get(field) != host.get(field):
            return f"{field} {key.get(field)!r} (this host: {host.get(field)!r})"
    return None


def choice_key(op: str, signature, threads: int) -> str:
    """The database key of a kernel choice: op, its shape/attribute signature, threads."""
    return json.dumps([op, signature, int(threads)], separators=(",", ":"))


class TuningDatabase:
    """One database directory, read once (re-read when its files change)."""

    def __init__(self, path: Path):
        self.path = path
        key_file = path / KEY_FILE
        if not key_file.is_file():
            raise ValueError(f"torch_tvm: {path} is not a tuning database (no {KEY_FILE}; "
                             f"torch_tvm.tune(..., work_dir=...) writes one)")
        self.key = json.loads(key_file.read_text())
        choices = path / CHOICES_FILE
        self.choices: dict[str, dict] = json.loads(choices.read_text()) if choices.is_file() else {}
        self.choice_ops = {json.loads(k)[0] for k in self.choices}  # read once, asked per conv
        self._ms = None

    @property
    def has_records(self) -> bool:
        f = self.path / MS_RECORDS
        return f.is_file() and f.stat().st_size > 0

    def ms(self):
        """MetaSchedule's JSONDatabase over the pruned records."""
        if self._ms is None:
            from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415
            self._ms = ms.database.JSONDatabase(str(self.path / MS_WORKLOADS),
                                                str(self.path / MS_RECORDS), allow_missing=True)
        return self._ms


def _stamp(path: Path) -> tuple:
    return tuple((path / f).stat().st_mtime_ns if (path / f).is_file() else 0
                 for f in (KEY_FILE, CHOICES_FILE, MS_RECORDS))


def open_database(path) -> TuningDatabase:
    p = Path(path).expanduser().resolve()
    if not p.is_dir():
        raise ValueError(f"torch_tvm: tuning database {path!r} is not a directory")
    with _lock:
        stamp = (str(p),) + _stamp(p)
        db = _opened.get(stamp)
        if db is None:
            db = _opened[stamp] = TuningDatabase(p)
        return db


def shipped() -> list[Path]:
    if not SHIPPED_ROOT.is_dir():
        return []
    return sorted(p.parent for p in SHIPPED_ROOT.glob(f"*/*/{KEY_FILE}"))


def _candidate_paths() -> list[tuple[str, bool]]:
    """(path, explicit) in priority order; explicit paths warn when they do not apply."""
    with _lock:
        if _exclusive is not None:
            return [(p, True) for p in _exclusive]
        out = [(p, True) for p in reversed(_stack)]
        if option_path:
            out.append((option_path, True))
        out += [(p, True) for p in os.environ.get(ENV, "").split(os.pathsep) if p]
        if use_shipped:
            out += [(str(p), False) for p in shipped()]
    return out


def _warn_once(path: str, text: str):
    with _lock:
        if path in _warned:
            return
        _warned.add(path)
    warnings.warn(text, stacklevel=3)


def active() -> list[TuningDatabase]:
    """The databases that apply on this host, first match first."""
    host = host_key()
    out = []
    for path, explicit in _candidate_paths():
        try:
            db = open_database(path)
        except (ValueError, OSError, json.JSONDecodeError) as e:
            if explicit:
                _warn_once(path, f"torch_tvm: tuning database {path} skipped: {e}")
            continue
        why = mismatch(db.key, host)
        if why is not None:
            if explicit:
                _warn_once(path, f"torch_tvm: tuning database {path} skipped: it was tuned for "
                                 f"another host or TVM version: {why}. Its kernels get the "
                                 f"default schedules.")
            continue
        out.append(db)
    return out


def lookup_choice(key: str) -> dict | None:
    """A stored kernel choice for `key` from the active databases, or None."""
    for db in active():
        entry = db.choices.get(key)
        if entry is not None:
            with _lock:
                if key not in _counted_choices:  # passes ask once per fusion pattern
                    _counted_choices.add(key)
                    counters["choices_from_database"] += 1
            return dict(entry, source="database")
    return None


def has_choices_for(op: str) -> bool:
    """Whether an active database holds a choice for `op`."""
    return any(op in db.choice_ops for db in active())


def note_choice(key: str, entry: dict):
    """Every choice a compile uses passes here, so tune() can store it."""
    with _lock:
        if _collecting is not None:
            _collecting[key] = {k: v for k, v in entry.items() if k != "source"}


def count(name: str, n: int = 1):
    with _lock:
        counters[name] += n


def capture(mod, target):
    """Called by the build between the passes and the schedules: tune() takes
    its tasks from exactly the modules that compilation schedules."""
    with _lock:
        if _captured is not None:
            _captured.append((mod.clone(), target))  # the schedules update `mod` in place


@tvm.transform.module_pass(opt_level=0, name="torch_tvm.ApplyTuningDatabase")
def apply_tuning_database(mod, _ctx):
    """Replay the tuned schedule of every PrimFunc that has a record; the
    others go on to the default schedules (which skip scheduled functions)."""
    dbs = [db for db in active() if db.has_records]
    if not dbs:
        return mod
    from tvm import relax, tirx  # noqa: PLC0415
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415

    def scheduled(m):
        return {gv.name_hint for gv, f in m.functions.items()
                if isinstance(f, tirx.PrimFunc) and f.attrs is not None
                and f.attrs.get("tirx.is_scheduled", False)}

    before = scheduled(mod)
    union = dbs[0].ms() if len(dbs) == 1 else \
        ms.database.OrderedUnionDatabase(*[db.ms() for db in dbs])
    with union:
        mod = relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
    with _lock:
        counters["tuned_kernels_applied"] += len(scheduled(mod) - before)
    return mod


@contextlib.contextmanager
def tuning_database(path):
    """Apply the database at `path` to what compiles inside the block."""
    db = open_database(path)  # a wrong path fails here, not at the next compile
    with _lock:
        _stack.append(str(db.path))
    try:
        yield db
    finally:
        with _lock:
            _stack.remove(str(db.path))


def describe() -> dict:
    """For stats(): the databases that apply now, and the counters."""
    return {"databases": [str(db.path) for db in active()], **counters}
