"""Tuning databases (torch_tvm/_tuning.py) and torch_tvm.tune (torch_tvm/_tune.py).

Everything is asserted from files, counters and IR, never from timings. The
tuning runs are tiny (a few trials of a small model) to stay in CI's budget.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import tvm
import tvm_ffi
from tvm.s_tir import meta_schedule as ms

import torch_tvm
from torch_tvm import _tune, _tuning, _winograd


class Small(torch.nn.Module):
    """TVM kernels to tune (layer norm, tanh, softmax) beside a 3x3 conv (a kernel choice)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.norm = torch.nn.LayerNorm(12)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        return torch.softmax(torch.tanh(self.norm(y)) * 2.0, dim=-1)


def _model():
    torch.manual_seed(0)
    return Small().eval(), torch.randn(1, 8, 12, 12)


@pytest.fixture(autouse=True)
def _fresh_state():
    """No database left active, no choice remembered across tests."""
    saved = dict(_winograd._decisions)
    _winograd._decisions.clear()
    yield
    _winograd._decisions.clear()
    _winograd._decisions.update(saved)
    _tuning._stack.clear()
    _tuning.option_path = None
    _tuning._warned.clear()


@pytest.fixture(scope="module")
def tuned_dir(tmp_path_factory):
    """One small tuning run, shared: 8 trials per task, 2 per round."""
    wd = tmp_path_factory.mktemp("tuned")
    model, x = _model()
    report = torch_tvm.tune(model, [x], wd, trials=24, max_trials_per_task=8,
                            num_trials_per_iter=4, progress=False, name="small")
    return wd, report


def _search_records(wd: Path) -> int:
    f = wd / _tuning.SEARCH_DIR / _tuning.MS_RECORDS
    return sum(1 for line in f.read_text().splitlines() if line.strip()) if f.is_file() else 0


def test_tune_writes_a_keyed_database(tuned_dir):
    wd, report = tuned_dir
    key = json.loads((wd / _tuning.KEY_FILE).read_text())
    assert _tuning.mismatch(key, _tuning.host_key()) is None
    assert key["models"] == ["small"] and key["threads"] == torch.get_num_threads()
    assert report.tasks, "the model has TVM kernels: there must be tasks"
    assert all(t.trials <= 8 for t in report.tasks)
    assert sum(t.trials for t in report.tasks) == _search_records(wd) > 0
    # The conv shape's choice (oneDNN or Winograd) was measured and stored.
    choices = json.loads((wd / _tuning.CHOICES_FILE).read_text())
    conv = [c for k, c in choices.items() if json.loads(k)[0] == "conv2d_3x3"]
    assert len(conv) == 1 and conv[0]["kernel"] in ("onednn", "winograd_F2", "winograd_F4")
    # Pruned: exactly the kept tasks have a record at the top of work_dir.
    pruned = (wd / _tuning.MS_RECORDS).read_text().splitlines()
    assert len([p for p in pruned if p.strip()]) == sum(t.kept for t in report.tasks)
    assert "torch_tvm.tune:" in str(report) and "applied" in str(report)


def test_tune_resumes(tmp_path):
    model, x = _model()
    first = torch_tvm.tune(model, [x], tmp_path, trials=4, max_trials_per_task=4,
                           num_trials_per_iter=2, progress=False)
    n1 = _search_records(tmp_path)
    # MetaSchedule checks its global limit between batches: over by < 1 batch.
    assert first.trials_run == n1 and 4 <= n1 < 4 + 2
    # Same budget again: nothing left to do, nothing re-measured.
    again = torch_tvm.tune(model, [x], tmp_path, trials=4, max_trials_per_task=4,
                           num_trials_per_iter=2, progress=False)
    assert again.trials_run == 0 and again.stopped_by == "done before"
    assert _search_records(tmp_path) == n1
    # A bigger budget continues from the records already there.
    more = torch_tvm.tune(model, [x], tmp_path, trials=16, max_trials_per_task=8,
                          num_trials_per_iter=4, progress=False)
    assert more.trials_run > 0
    assert _search_records(tmp_path) == n1 + more.trials_run
    assert sum(t.trials for t in more.tasks) == n1 + more.trials_run


def _force_keep_all(wd: Path, dest: Path):
    """A copy of the database whose pruned part holds every task's best record,
    faster than the default schedule or not: applying is then deterministic."""
    shutil.copytree(wd, dest)
    for name in (_tuning.MS_WORKLOADS, _tuning.MS_RECORDS):
        (dest / name).unlink(missing_ok=True)
    search = ms.database.JSONDatabase(work_dir=str(dest / _tuning.SEARCH_DIR))
    pruned = ms.database.JSONDatabase(str(dest / _tuning.MS_WORKLOADS),
                                      str(dest / _tuning.MS_RECORDS))
    search.dump_pruned(pruned)
    return len(pruned)


def _run(model, x):
    scripted = torch.jit.trace(model, [x])
    with torch.no_grad():
        for _ in range(3):
            out = scripted(x)
    return out


def test_applied_database_schedules_kernels_and_matches_eager(tuned_dir, tmp_path):
    wd, _ = tuned_dir
    n = _force_keep_all(wd, tmp_path / "db")
    assert n > 0
    model, x = _model()
    before = _tuning.counters["tuned_kernels_applied"]
    torch_tvm.enable(tuning_db=str(tmp_path / "db"))
    out = _run(model, x)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    assert _tuning.counters["tuned_kernels_applied"] - before == n
    assert torch_tvm.stats()["tuning"]["databases"] == [str((tmp_path / "db").resolve())]


def test_tuned_schedule_is_in_the_compiled_ir(tuned_dir, tmp_path):
    """The pass replays a record: the PrimFunc comes out scheduled, and its
    loops differ from the unscheduled function's."""
    wd, _ = tuned_dir
    _force_keep_all(wd, tmp_path / "db")
    model, x = _model()
    captured = []
    with _tuning._lock:
        _tuning._captured = captured
    try:
        _run(model, x)
    finally:
        _tuning._captured = None
    mod, target = captured[0]
    with target, _tuning.tuning_database(tmp_path / "db"):
        out = _tuning.apply_tuning_database(mod)
    tuned = [gv.name_hint for gv, f in out.functions.items()
             if isinstance(f, tvm.tirx.PrimFunc) and f.attrs.get("tirx.is_scheduled", False)
             and not mod[gv].attrs.get("tirx.is_scheduled", False)]
    assert tuned
    for name in tuned:
        assert not tvm_ffi.structural_equal(out[name], mod[name])


def test_database_for_another_host_is_skipped_with_one_warning(tuned_dir, tmp_path):
    wd, _ = tuned_dir
    for field, value in (("mcpu", "not-this-cpu"), ("tvm", "0.0.1")):
        other = tmp_path / field
        _force_keep_all(wd, other)
        key = json.loads((other / _tuning.KEY_FILE).read_text())
        key[field] = value
        (other / _tuning.KEY_FILE).write_text(json.dumps(key))
        model, x = _model()
        before = dict(_tuning.counters)
        torch_tvm.enable(tuning_db=str(other))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = _run(model, x)
            _run(model, torch.randn(2, 8, 12, 12))  # a second compile: no second warning
        torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
        skipped = [w for w in caught if "tuning database" in str(w.message)]
        assert len(skipped) == 1 and field in str(skipped[0].message)
        assert _tuning.counters == before
        assert torch_tvm.stats()["tuning"]["databases"] == []


def _db_with_choice(tmp_path, kernel_choice: int, gemm: str | None = None) -> Path:
    """A database holding only a Winograd choice for Small's conv shape, made
    with the Winograd GEMM kernel `gemm` (default: the one that runs here)."""
    gemm = gemm or _winograd._gemm_in_use()
    db = tmp_path / "choices_db"
    db.mkdir()
    (db / _tuning.KEY_FILE).write_text(json.dumps(_tuning.host_key()))
    key = _tuning.choice_key("conv2d_3x3", [1, 12, 12, 8, 8, 1, 1, gemm],
                             torch.get_num_threads())
    entry = {"op": "conv2d_3x3", "shape": [1, 12, 12, 8, 8], "pad": [1, 1],
             "threads": torch.get_num_threads(), "times_us": {"onednn": 9.0, "F4": 1.0},
             "choice": kernel_choice, "kernel": f"winograd_F{kernel_choice}"}
    (db / _tuning.CHOICES_FILE).write_text(json.dumps({key: entry}))
    return db


@pytest.mark.parametrize("how", ["enable", "context", "env"])
def test_stored_choice_is_applied(tmp_path, monkeypatch, how):
    db = _db_with_choice(tmp_path, 4)
    model, x = _model()
    calls = torch_tvm.stats()["kernels"]["winograd_calls"]
    if how == "enable":
        torch_tvm.enable(tuning_db=str(db))
        out = _run(model, x)
    elif how == "context":
        with torch_tvm.tuning_database(db):
            out = _run(model, x)
        assert not _tuning._stack
    else:
        monkeypatch.setenv(_tuning.ENV, str(db))
        out = _run(model, x)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    assert torch_tvm.stats()["kernels"]["winograd_calls"] > calls
    (d,) = _winograd.decisions()
    assert d["source"] == "database" and d["kernel"] == "winograd_F4"
    report = torch_tvm.explain(torch.jit.trace(model, [x]), [x])
    assert "WINOGRAD_F4 (onednn 9.0 us, F4 1.0 us, from the tuning database)" in str(report)


def test_choice_made_with_another_winograd_gemm_is_not_applied(tmp_path):
    """A Winograd choice is keyed on the GEMM kernel it was measured with:
    one stored for at::matmul's GEMMs (every database before the packed GEMM)
    is measured again, not applied."""
    other = next(g for g in _winograd.GEMM_KERNELS if g != _winograd._gemm_in_use())
    db = _db_with_choice(tmp_path, 4, gemm=other)
    model, x = _model()
    torch_tvm.enable(tuning_db=str(db))
    out = _run(model, x)
    torch.testing.assert_close(out, model(x), rtol=1e-4, atol=1e-5)
    (d,) = _winograd.decisions()
    assert d["source"] == "measured"


def test_shipped_databases_apply_only_when_enabled(tmp_path, monkeypatch):
    db = _db_with_choice(tmp_path, 4)
    root = tmp_path / "shipped"
    (root / "cpu").mkdir(parents=True)
    shutil.copytree(db, root / "cpu" / "small")
    monkeypatch.setattr(_tuning, "SHIPPED_ROOT", root)
    torch_tvm.enable(shipped_tuning=True)
    assert _tuning.describe()["databases"] == [str(root / "cpu" / "small")]
    torch_tvm.enable(shipped_tuning=False)
    assert _tuning.describe()["databases"] == []


def test_bad_databases_and_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        torch_tvm.enable(tuning_db=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not a tuning database"):
        torch_tvm.enable(tuning_db=str(tmp_path))
    with pytest.raises(ValueError, match="tuning_db must be a directory path"):
        torch_tvm.enable(tuning_db=3)
    with pytest.raises(ValueError, match="shipped_tuning must be True or False"):
        torch_tvm.enable(shipped_tuning="yes")
    with pytest.raises(ValueError, match="not a tuning database"):
        with torch_tvm.tuning_database(tmp_path):
            pass
    model, x = _model()
    with pytest.raises(ValueError, match="cost_model must be one of"):
        torch_tvm.tune(model, [x], tmp_path / "a", cost_model="best")
    with pytest.raises(ValueError, match="trials must be"):
        torch_tvm.tune(model, [x], tmp_path / "a", trials=-1)
    with pytest.raises(ValueError, match="time_budget_s must be > 0"):
        torch_tvm.tune(model, [x], tmp_path / "a", time_budget_s=0)


def test_tune_refuses_a_database_of_another_host(tmp_path):
    (tmp_path / _tuning.KEY_FILE).write_text(json.dumps(dict(_tuning.host_key(), mcpu="other")))
    model, x = _model()
    with pytest.raises(ValueError, match="another host"):
        torch_tvm.tune(model, [x], tmp_path, trials=4, progress=False)


def test_time_budget_stops_the_search(tmp_path):
    model, x = _model()
    report = torch_tvm.tune(model, [x], tmp_path, trials=400, num_trials_per_iter=4,
                            time_budget_s=0.001, progress=False)
    assert report.stopped_by == "time budget"
    assert 0 < report.trials_run < 400


def _cli(*args, timeout=240):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "torch_tvm", *args], capture_output=True,
                          text=True, timeout=timeout, cwd="/", env=env)


def test_cli_tune_and_explain_end_to_end(tmp_path):
    model, x = _model()
    path = tmp_path / "small.pt"
    torch.jit.save(torch.jit.trace(model, [x]), str(path))
    wd = tmp_path / "db"
    r = _cli("tune", str(path), "--input-shape", "1,8,12,12", "--work-dir", str(wd),
             "--trials", "8", "--trials-per-task", "4", "--time-budget", "60s", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "torch_tvm.tune:" in r.stdout and "apply it with" in r.stdout
    assert (wd / _tuning.KEY_FILE).is_file() and _search_records(wd) > 0
    r = _cli("explain", str(path), "--input-shape", "1,8,12,12", "--tuning-db", str(wd))
    assert r.returncode == 0, r.stderr
    assert "TVM group(s)" in r.stdout and "from the tuning database" in r.stdout
    assert f"tuning databases: {wd.resolve()}" in r.stdout


def test_cli_help_and_bad_arguments(tmp_path):
    r = _cli("--help")
    assert r.returncode == 0 and "tune" in r.stdout and "explain" in r.stdout
    r = _cli("tune", "--help")
    assert r.returncode == 0 and "--time-budget" in r.stdout and "--input-shape" in r.stdout
    r = _cli("tune", "x.pt", "--input-shape", "1,a", "--work-dir", str(tmp_path))
    assert r.returncode == 2 and "not a shape" in r.stderr
    r = _cli("tune", "x.pt", "--input-shape", "1,3", "--work-dir", str(tmp_path),
             "--time-budget", "soon")
    assert r.returncode == 2 and "not a duration" in r.stderr
    r = _cli("explain", str(tmp_path / "missing.pt"), "--input-shape", "1,3")
    assert r.returncode == 2 and "cannot load" in r.stderr


@pytest.mark.parametrize("text,seconds", [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200),
                                          ("1h30m", 5400)])
def test_cli_durations(text, seconds):
    from torch_tvm._cli import _duration
    assert _duration(text) == seconds


def test_cost_models_are_the_ones_tune_passes_to_metaschedule():
    for name in ("random", "mlp"):
        assert ms.cost_model.CostModel.create(name) is not None
    assert _tune.COST_MODELS[0] == "random"
