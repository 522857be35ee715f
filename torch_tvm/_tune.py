"""torch_tvm.tune(): tune a model's TVM kernels with MetaSchedule and store its
measured kernel choices, in a database directory (_tuning describes the layout).

  1. Collect. The model is compiled by torch_tvm itself (a fresh trace, run
     under the pass), with only this work_dir's database applying. The build
     hands over each group's module at the point where the schedules start
     (_tuning.capture), so the tasks and their structural hashes are exactly
     those that a later compile looks up. The kernel choices measured on the
     way (oneDNN or Winograd per conv shape, TVM or ATen per norm/softmax) are
     stored in choices.json; choices already there are reused, not re-measured.
  2. Search. MetaSchedule tunes every TVM kernel (the call_tir tasks; the
     oneDNN, BLAS and ATen calls and the hand-written Winograd transforms are
     not tasks), with a progress bar over trials and time. Its full logs go
     to work_dir/search/, appended as it goes: an interrupted run keeps what
     it measured, and the next run continues from there.
  3. Prune. Each task's best record is timed against the default schedule
     torch_tvm would otherwise use, interleaved, in this process and on its
     thread pool. Only records that beat it by `_MARGIN` go to the pruned
     database at the top of work_dir, which is what applying reads.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import tvm
import tvm_ffi

from . import _tuning

COST_MODELS = ("random", "mlp", "xgb")
# A tuned kernel replaces the default schedule only when this much faster.
_MARGIN = 0.95


@dataclass
class TaskResult:
    name: str
    weight: int             # call sites in the model
    trials: int             # measured candidates in the search logs
    default_us: float | None
    tuned_us: float | None
    kept: bool


@dataclass
class TuneReport:
    work_dir: str
    tasks: list[TaskResult] = field(default_factory=list)
    choices: dict = field(default_factory=dict)
    skipped: dict = field(default_factory=dict)   # task name -> why MetaSchedule cannot take it
    trials_run: int = 0
    seconds: float = 0.0
    stopped_by: str = ""    # "trials", "time budget", "search space exhausted", "done before",
    #                         "interrupted" or "no TVM kernels to tune"

    def __str__(self) -> str:
        lines = [f"torch_tvm.tune: {self.work_dir}: {len(self.tasks)} task(s), "
                 f"{self.trials_run} trial(s) this run in {self.seconds:.0f} s "
                 f"(stopped by {self.stopped_by})",
                 f"  {'task':<44} {'weight':>6} {'trials':>6} {'default us':>11} "
                 f"{'tuned us':>10}  applied"]
        for t in self.tasks:
            d = f"{t.default_us:.1f}" if t.default_us is not None else "-"
            u = f"{t.tuned_us:.1f}" if t.tuned_us is not None else "-"
            lines.append(f"  {t.name[:44]:<44} {t.weight:>6} {t.trials:>6} {d:>11} {u:>10}  "
                         f"{'yes' if t.kept else 'no'}")
        for name, why in sorted(self.skipped.items()):
            lines.append(f"  not tuned: {name}: {why}")
        for key, c in sorted(self.choices.items()):
            op, sig, threads = json.loads(key)
            times = ", ".join(f"{k} {v:.1f}" for k, v in c.get("times_us", {}).items())
            lines.append(f"  choice {op} {sig} t{threads}: {c.get('kernel')} ({times} us)")
        return "\n".join(lines)


def _script(module, inputs):
    if isinstance(module, torch.jit.ScriptModule):
        return copy.deepcopy(module)  # a fresh graph executor: it compiles again
    if isinstance(module, torch.jit.ScriptFunction):
        return module
    if isinstance(module, torch.nn.Module):
        module = module.eval()
    return torch.jit.trace(module, tuple(inputs))


def _collect_candidates(module, inputs, work_dir: Path, scope: str):
    """Compile the model with the convs in `scope` left to TVM (_tvm_convs).
    Returns (captured modules, [(Sig, conv, bias, chain)] one per distinct conv)."""
    from . import _tvm_convs  # noqa: PLC0415
    with _tvm_convs._lock:
        _tvm_convs.leave_to_tvm, _tvm_convs._left = _tvm_convs.in_scope(scope), []
    try:
        captured, _ = _collect(module, inputs, work_dir)
    finally:
        with _tvm_convs._lock:
            left, _tvm_convs.leave_to_tvm, _tvm_convs._left = _tvm_convs._left, None, None
    seen, convs = set(), []
    for sig, conv, bias, chain in left:
        ident = (sig, bias is not None, tuple(c.op.name for c, _ in chain))
        if ident not in seen:
            seen.add(ident)
            convs.append((sig, conv, bias, chain))
    return captured, convs


def _choose_convs(convs, work_dir: Path, target) -> dict:
    """Per conv left to TVM: oneDNN against the tuned TVM kernel, on a module
    of the conv and the chain after it, compiled both ways, timed interleaved."""
    from tvm import relax  # noqa: PLC0415

    from . import _build, _tvm_convs  # noqa: PLC0415
    from ._aten_choice import _best_of_interleaved  # noqa: PLC0415
    threads = int(target.attrs.get("num-cores", 1))
    choices = {}
    for sig, conv, bias, chain in convs:
        mod = _tvm_convs.mini_module(sig, conv, bias, chain)
        fns, owners = [], []
        for kernel in ("onednn", "tvm"):
            with _tuning._lock:
                _tuning._exclusive = [str(work_dir)]
                _tvm_convs.leave_to_tvm = (lambda _s: False) if kernel == "onednn" \
                    else (lambda _s: True)
            try:
                ex, owner = _build.build_relax(mod, str(target), 3)
            finally:
                with _tuning._lock:
                    _tuning._exclusive, _tvm_convs.leave_to_tvm = None, None
            fns.append(relax.VirtualMachine(ex, tvm.cpu())["main"])
            owners.append(owner)
        x = _tvm_convs.random_input(sig)
        onednn_us, tvm_us = _best_of_interleaved([(f, [x]) for f in fns], rounds=7, per_round=5)
        kernel = "tvm" if tvm_us < _tvm_convs._MARGIN * onednn_us else "onednn"
        choices[sig.key(threads, _tvm_convs.chain_names(chain))] = {
            "op": "conv2d", "shape": [sig.n, sig.h, sig.w, sig.c, sig.k],
            "kernel_size": [sig.kh, sig.kw], "stride": list(sig.stride), "groups": sig.groups,
            "epilogue": _tvm_convs.chain_names(chain), "threads": threads,
            "times_us": {"onednn": onednn_us, "tvm": tvm_us}, "kernel": kernel}
    return choices


def _collect(module, inputs, work_dir: Path):
    """Compile the model under torch_tvm with only work_dir's database applying.
    Returns ([(module before the schedules, target)], {choice key: entry})."""
    from ._api import enable, disable, is_enabled  # noqa: PLC0415
    was_enabled = is_enabled()
    if not was_enabled:
        enable()
    with _tuning._lock:
        _tuning._exclusive = [str(work_dir)]
        _tuning._collecting = {}
        _tuning._captured = []
    try:
        scripted = _script(module, inputs)
        with torch.no_grad():
            for _ in range(3):  # the profiling executor optimises on the second call
                scripted(*inputs)
    finally:
        with _tuning._lock:
            captured, choices = _tuning._captured, _tuning._collecting
            _tuning._exclusive = _tuning._collecting = _tuning._captured = None
        if not was_enabled:
            disable()
    if not captured:
        raise RuntimeError("torch_tvm.tune: nothing was compiled. Pass a module that has not run "
                           "under torch_tvm in this process (a fresh torch.jit.trace/script or "
                           "torch.jit.load), and check torch_tvm.explain() for fallbacks")
    return captured, choices


def _fast_stack(context: int = 1):
    """inspect.stack() without inspect.getmodule: the frame, file, line and the
    one source line TVMScript's parser reads (code_context)."""
    import inspect  # noqa: PLC0415
    import linecache  # noqa: PLC0415
    out, frame = [], sys._getframe(1)
    while frame is not None:
        name, line = frame.f_code.co_filename, frame.f_lineno
        text = linecache.getline(name, line) if context > 0 else ""
        out.append(inspect.FrameInfo(frame, name, line, frame.f_code.co_name,
                                     [text] if text else None, 0 if text else None))
        frame = frame.f_back
    return out


def _import_tensor_intrin():
    """Import tvm.s_tir.tensor_intrin (MetaSchedule imports it), fast.

    Its ~500 TVMScript intrinsics each call inspect.stack(), whose
    inspect.getmodule scans sys.modules for every import-machinery frame; with
    torch loaded that took 70-90 s here (200 s under a profiler, 85% in
    getmodule). The parser only reads each frame and its source line, which
    _fast_stack gives; inspect.stack is restored right after."""
    import inspect  # noqa: PLC0415
    if "tvm.s_tir.tensor_intrin" in sys.modules:
        return
    slow = inspect.stack
    inspect.stack = _fast_stack
    try:
        import tvm.s_tir.tensor_intrin  # noqa: F401, PLC0415
    finally:
        inspect.stack = slow


def _tunable(task) -> str | None:
    """Why MetaSchedule cannot take the task, or None."""
    from tvm.s_tir.analysis import estimate_tir_flops  # noqa: PLC0415
    func = task.dispatched[0]["main"] if task.dispatched else task.mod["main"]
    if func.attrs is not None and func.attrs.get("tirx.is_scheduled", False):
        return "hand-written kernel"
    try:
        estimate_tir_flops(task.mod)
    except Exception as e:  # noqa: BLE001 - TVM raises InternalError here
        # The task scheduler estimates every task's FLOPs first, and TVM 0.27's
        # estimator has no rule for some expressions (tirx.Let, which the
        # vectorisable transcendentals of _fastmath use): it would abort the run.
        return f"TVM cannot estimate its FLOPs ({str(e).strip().splitlines()[-1][:60]})"
    return None


def _tasks(captured, candidates=()):
    """MetaSchedule tasks of every captured module, deduplicated (weights summed
    over the model's groups); the candidate compile (TVM convs) adds only its
    new tasks. Returns ([(ExtractedTask, target)], {task name: why it is left out})."""
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415
    out: list = []
    skipped: dict[str, str] = {}
    for (mod, target), extra in [(c, False) for c in captured] + [(c, True) for c in candidates]:
        for task in ms.relax_integration.extract_tasks(mod, target):
            why = _tunable(task)
            if why is not None:
                if why != "hand-written kernel":
                    skipped[task.task_name] = why
                continue
            for i, (other, other_target) in enumerate(out):
                if tvm_ffi.structural_equal(other.mod, task.mod):
                    if extra:
                        break  # the same kernel as in the model's own compile
                    out[i] = (ms.ExtractedTask(other.task_name, other.mod, other.target,
                                               list(other.dispatched),
                                               int(other.weight) + int(task.weight)),
                              other_target)
                    break
            else:
                out.append((task, target))
    return out, skipped


def _search_db(work_dir: Path):
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415
    search = work_dir / _tuning.SEARCH_DIR
    search.mkdir(parents=True, exist_ok=True)
    return ms.database.JSONDatabase(work_dir=str(search), allow_missing=True)


def _trials_done(db, task) -> int:
    """Every record of the task, failed runs too: get_top_k would leave out
    candidates that failed or timed out (a loaded machine), and the report's
    trials would then undercount the search log."""
    if not db.has_workload(task.mod):
        return 0
    workload = db.commit_workload(task.mod)
    return sum(1 for r in db.get_all_tuning_records() if r.workload.same_as(workload))


class _TimeBudget(Exception):
    """Raised by the progress callback to stop the search at the time budget."""


def _in_process_builder():
    """A MetaSchedule builder that compiles the candidates in this process.

    MetaSchedule's LocalBuilder compiles in fresh subprocesses, restarted for
    every batch, whose build function imports tvm.s_tir.tensor_intrin: 70-90 s
    on this project's machines (its TVMScript intrinsics, mostly CUDA's), over
    LocalBuilder's 30 s timeout, so every candidate failed to build. Here the
    same build (RemoveWeightLayoutRewriteBlock, then compile, then a tar
    export for the runner) runs in process; the torch_tvm process never needs
    those intrinsics (no tensorised rule applies to the CPU rule sets used)."""
    import tempfile  # noqa: PLC0415

    from tvm.ir.utils import derived_object  # noqa: PLC0415
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock  # noqa: PLC0415
    from tvm.support.tar import tar  # noqa: PLC0415

    @derived_object
    class _Builder(ms.builder.PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:
                    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(item.mod)
                    rt_mod = tvm.compile(mod, target=item.target)
                    path = os.path.join(tempfile.mkdtemp(prefix="torch_tvm_tune_"),
                                        "tvm_tmp_mod." + tar.output_format)
                    rt_mod.export_library(path, fcompile=tar)
                    results.append(ms.builder.BuilderResult(path, None))
                except Exception as e:  # noqa: BLE001 - a candidate that fails is reported
                    results.append(ms.builder.BuilderResult(None, f"{type(e).__name__}: {e}"))
            return results

    return _Builder()


def _search(tasks, db, work_dir: Path, trials: int, per_task: int, time_budget_s, cost_model,
            trials_per_iter: int, progress: bool, seed) -> tuple[int, str]:
    """Run MetaSchedule on the tasks that have trials left. Returns (trials run, why it stopped)."""
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415
    from tvm.ir.utils import derived_object  # noqa: PLC0415

    done = [_trials_done(db, t) for t, _ in tasks]
    todo = [i for i, (t, _) in enumerate(tasks) if done[i] < per_task]
    left = min(trials - sum(done), sum(per_task - done[i] for i in todo))
    if left <= 0 or not todo:
        return 0, "done before"
    start = time.monotonic()
    state = {"run": 0, "stop": "trials"}
    bar = None
    if progress:
        from tqdm import tqdm  # noqa: PLC0415
        bar = tqdm(total=left, unit="trial", desc="torch_tvm.tune", file=sys.stderr,
                   dynamic_ncols=True)

    @derived_object
    class _Progress(ms.measure_callback.PyMeasureCallback):
        def apply(self, scheduler, task_id, candidates, builder_results, runner_results):
            state["run"] += len(candidates)
            if bar is not None:
                bar.update(len(candidates))
                bar.set_postfix_str(f"task {tasks[todo[task_id]][0].task_name[:30]}")
            if time_budget_s is not None and time.monotonic() - start > time_budget_s:
                # Raised through the task scheduler, which stops. Terminating the
                # tasks from here instead makes the scheduler fail its own
                # TerminateTask check later. The records are committed already
                # (the default callbacks run before this one).
                state["stop"] = "time budget"
                raise _TimeBudget

    targets = {str(t) for _, t in tasks}
    if len(targets) != 1:
        raise RuntimeError(f"torch_tvm.tune: the groups compiled for several targets: {targets}")
    import logging  # noqa: PLC0415
    # MetaSchedule logs every task's table to stdout at INFO; keep that in its
    # log files (work_dir/search/logs) and show the progress bar instead.
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    chosen = [tasks[i][0] for i in todo]
    contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
        chosen, str(work_dir / _tuning.SEARCH_DIR), seed=seed)
    callbacks = ms.measure_callback.MeasureCallback.create("default") + [_Progress()]
    try:
        ms.tune_tasks(tasks=contexts, task_weights=weights,
                      work_dir=str(work_dir / _tuning.SEARCH_DIR),
                      max_trials_global=left, max_trials_per_task=per_task,
                      num_trials_per_iter=trials_per_iter, builder=_in_process_builder(),
                      database=db, cost_model=cost_model,
                      measure_callbacks=callbacks)
        if state["stop"] == "trials" and state["run"] < left:
            # MetaSchedule stops a task when its search finds no candidate it has
            # not measured: elementwise kernels have only a few schedules.
            state["stop"] = "search space exhausted"
    except KeyboardInterrupt:
        state["stop"] = "interrupted"
    except Exception:  # noqa: BLE001 - _TimeBudget comes back through TVM's FFI
        if state["stop"] != "time budget":
            raise
    finally:
        if bar is not None:
            bar.close()
    return state["run"], state["stop"]


def _random_args(func):
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415
    rng = np.random.default_rng(0)
    args = []
    for info in ms.arg_info.ArgInfo.from_prim_func(func):
        shape, dtype = [int(d) for d in info.shape], str(info.dtype)
        data = rng.standard_normal(shape) if "float" in dtype else rng.integers(0, 4, shape)
        args.append(tvm.runtime.tensor(np.asarray(data).astype(dtype)))
    return args


def _time_pair(default_mod, tuned_mod, target, func) -> tuple[float, float]:
    """Best-of-rounds µs of the default and the tuned kernel, interleaved."""
    from ._aten_choice import _best_of_interleaved  # noqa: PLC0415
    args = _random_args(func)
    calls = []
    for m in (default_mod, tuned_mod):
        with target:
            rt = tvm.compile(m, target=target)
        calls.append((rt["main"], args))
    return tuple(_best_of_interleaved(calls, rounds=7, per_round=5))


def _prune(tasks, db, work_dir: Path) -> list[TaskResult]:
    """Write the pruned database: each task's best record, where it beats the default schedule."""
    from tvm.s_tir import meta_schedule as ms  # noqa: PLC0415

    from ._schedule import default_cpu_schedule  # noqa: PLC0415
    for name in (_tuning.MS_WORKLOADS, _tuning.MS_RECORDS):
        (work_dir / name).unlink(missing_ok=True)
    pruned = ms.database.JSONDatabase(str(work_dir / _tuning.MS_WORKLOADS),
                                      str(work_dir / _tuning.MS_RECORDS), allow_missing=True)
    results = []
    for task, target in tasks:
        trials = _trials_done(db, task)
        best = db.query_tuning_record(task.mod, target, "main") if trials else None
        default_us = tuned_us = None
        kept = False
        if best is not None:
            with target, tvm.transform.PassContext(opt_level=3):
                default_mod = default_cpu_schedule()(task.mod.clone())  # it updates in place
            sch = db.query_schedule(task.mod, target, "main")
            if sch is not None:
                try:
                    default_us, tuned_us = _time_pair(default_mod, sch.mod, target, task.mod["main"])
                except Exception as e:  # noqa: BLE001 - a record that does not build is not kept
                    print(f"torch_tvm.tune: {task.task_name}: tuned kernel failed: {e}",
                          file=sys.stderr)
                kept = tuned_us is not None and tuned_us < _MARGIN * default_us
            if kept:
                workload = pruned.commit_workload(task.mod)
                pruned.commit_tuning_record(ms.database.TuningRecord(
                    best.trace, workload, best.run_secs, best.target, best.args_info))
        results.append(TaskResult(task.task_name, int(task.weight), trials, default_us,
                                  tuned_us, kept))
    return results


def _write_key(work_dir: Path, extra: dict):
    key_file = work_dir / _tuning.KEY_FILE
    host = _tuning.host_key()
    if key_file.is_file():
        old = json.loads(key_file.read_text())
        why = _tuning.mismatch(old, host)
        if why is not None:
            raise ValueError(f"torch_tvm.tune: {work_dir} holds a database for another host or "
                             f"TVM version ({why}); tune into a new work_dir")
        models = sorted(set(old.get("models", [])) | set(extra.get("models", [])))
        extra = {**old, **extra, "models": models}
    key_file.write_text(json.dumps(dict(extra, **host), indent=1, sort_keys=True) + "\n")


def _merge_choices(work_dir: Path, choices: dict) -> dict:
    path = work_dir / _tuning.CHOICES_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    stored.update(choices)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return choices


def tune(module, example_inputs, work_dir, trials: int = 2000, time_budget_s: float | None = None,
         *, max_trials_per_task: int | None = None, cost_model: str = "random",
         num_trials_per_iter: int = 16, progress: bool = True, seed: int | None = None,
         name: str | None = None, tvm_convs: str = "depthwise") -> TuneReport:
    """Tune `module` for `example_inputs` on this host into the database `work_dir`.

    `trials` bounds the MetaSchedule trials over all tasks and runs (a second
    run continues the first: trials already in work_dir count); MetaSchedule's
    global limit is checked between batches, so a run can go over it by less
    than one batch (num_trials_per_iter);
    `max_trials_per_task` (default: trials spread over the tasks, at least
    num_trials_per_iter) bounds each task; `time_budget_s` stops the search
    after that many seconds (the pruning after it takes a few more).
    `cost_model`: "random" (the default), "mlp" (crashed in TVM 0.27's
    mlp_model.lambda_rank_loss on a batch of one candidate, see README) or
    "xgb" (needs xgboost, not installed).
    `tvm_convs`: which convs also get a tuned TVM kernel as a candidate beside
    oneDNN, chosen per conv by measurement ("depthwise", "all" or "none";
    _tvm_convs.py).
    Apply the result with enable(tuning_db=work_dir), TORCH_TVM_TUNING_DB or
    `with torch_tvm.tuning_database(work_dir):`.
    """
    from ._api import _check_int  # noqa: PLC0415
    _check_int("trials", trials, 0)
    _check_int("num_trials_per_iter", num_trials_per_iter, 1)
    if max_trials_per_task is not None:
        _check_int("max_trials_per_task", max_trials_per_task, 1)
    if cost_model not in COST_MODELS:
        raise ValueError(f"torch_tvm.tune: cost_model must be one of {COST_MODELS}, "
                         f"not {cost_model!r}")
    from . import _tvm_convs  # noqa: PLC0415
    if tvm_convs not in _tvm_convs.SCOPES:
        raise ValueError(f"torch_tvm.tune: tvm_convs must be one of {_tvm_convs.SCOPES}, "
                         f"not {tvm_convs!r}")
    if time_budget_s is not None and not time_budget_s > 0:
        raise ValueError(f"torch_tvm.tune: time_budget_s must be > 0, got {time_budget_s}")
    if not isinstance(example_inputs, (list, tuple)):
        example_inputs = (example_inputs,)
    work_dir = Path(work_dir).expanduser().resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    _write_key(work_dir, {"threads": threads, "models": [name] if name else []})
    # MetaSchedule's measuring subprocesses run TVM's own pool: the thread budget.
    os.environ["TVM_NUM_THREADS"] = str(threads)
    start = time.monotonic()
    captured, choices = _collect(module, example_inputs, work_dir)
    report = TuneReport(str(work_dir), choices=_merge_choices(work_dir, choices))
    convs, more = [], []
    if tvm_convs != "none":
        more, convs = _collect_candidates(module, example_inputs, work_dir, tvm_convs)
    tasks, report.skipped = _tasks(captured, more)
    _import_tensor_intrin()
    db = _search_db(work_dir)
    per_task = max_trials_per_task or max(num_trials_per_iter, -(-trials // max(len(tasks), 1)))
    if tasks:
        report.trials_run, report.stopped_by = _search(
            tasks, db, work_dir, trials, per_task, time_budget_s, cost_model,
            num_trials_per_iter, progress, seed)
        db = _search_db(work_dir)  # re-read: the search appended to the files
    else:
        report.stopped_by = "no TVM kernels to tune"
    report.tasks = _prune(tasks, db, work_dir)
    if convs:
        conv_choices = _choose_convs(convs, work_dir, captured[0][1])
        report.choices.update(_merge_choices(work_dir, conv_choices))
    report.seconds = time.monotonic() - start
    if progress:
        print(report, file=sys.stderr)
    return report
