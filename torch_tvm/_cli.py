"""The torch-tvm command: tune and explain a torch.jit.save'd model.

  torch-tvm tune model.pt --input-shape 1,3,224,224 --work-dir DIR --trials N --time-budget 30m
  torch-tvm explain model.pt --input-shape 1,3,224,224 [--tuning-db DIR]

Also runs as `python -m torch_tvm`.
"""
from __future__ import annotations

import argparse
import re
import sys

_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32")


def _shape(text: str) -> list[int]:
    try:
        dims = [int(d) for d in text.replace("x", ",").split(",") if d.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (write 1,3,224,224)") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (positive sizes, e.g. 1,3,224,224)")
    return dims


def _duration(text: str) -> float:
    """Seconds from "90", "90s", "30m", "2h" or "1h30m"."""
    parts = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or parts is None or not any(parts.groups()):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 30m, 2h, 1h30m)")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    total = h * 3600 + m * 60 + s
    if total <= 0:
        raise argparse.ArgumentTypeError(f"the time budget must be positive: {text!r}")
    return total


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torch-tvm", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(cmd):
        cmd.add_argument("model", help="a file written by torch.jit.save")
        cmd.add_argument("--input-shape", type=_shape, action="append", required=True,
                         metavar="N,C,H,W", help="shape of one input (repeat for each input, "
                         "in order); inputs are random")
        cmd.add_argument("--dtype", choices=_DTYPES, default="float32",
                         help="dtype of the random inputs (default float32)")
        cmd.add_argument("--threads", type=int, default=None,
                         help="thread budget (default: torch's, i.e. the cores)")

    t = sub.add_parser("tune", help="tune the model's TVM kernels and measure its kernel "
                       "choices into a database directory")
    common(t)
    t.add_argument("--work-dir", required=True, help="the database directory (created, or "
                   "continued when it exists)")
    t.add_argument("--trials", type=int, default=2000,
                   help="MetaSchedule trials over all tasks, counting earlier runs (default 2000)")
    t.add_argument("--trials-per-task", type=int, default=None,
                   help="cap per task (default: trials spread over the tasks)")
    t.add_argument("--time-budget", type=_duration, default=None, metavar="DURATION",
                   help="stop the search after this long: 90s, 30m, 2h, 1h30m")
    t.add_argument("--cost-model", choices=("random", "mlp", "xgb"), default="random",
                   help="MetaSchedule's cost model (default random; xgb needs xgboost)")
    t.add_argument("--name", default=None, help="a model name recorded in the database key")
    t.add_argument("--no-progress", action="store_true", help="no progress bar or table")

    e = sub.add_parser("explain", help="print which ops run in TVM, which fell back and why, "
                       "and each kernel choice")
    common(e)
    e.add_argument("--tuning-db", default=None, help="apply this tuning database")
    return p


def _inputs(args):
    import torch  # noqa: PLC0415
    dtype = getattr(torch, args.dtype)
    gen = torch.Generator().manual_seed(0)
    if dtype.is_floating_point:
        return [torch.randn(s, generator=gen).to(dtype) for s in args.input_shape]
    return [torch.randint(0, 8, s, generator=gen, dtype=dtype) for s in args.input_shape]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import torch  # noqa: PLC0415

    import torch_tvm  # noqa: PLC0415
    if args.threads is not None:
        if args.threads < 1:
            print("torch-tvm: --threads must be >= 1", file=sys.stderr)
            return 2
        torch.set_num_threads(args.threads)
    try:
        model = torch.jit.load(args.model).eval()
    except Exception as e:  # noqa: BLE001 - any load failure is the user's file
        print(f"torch-tvm: cannot load {args.model!r} with torch.jit.load: {e}", file=sys.stderr)
        return 2
    inputs = _inputs(args)
    try:
        if args.command == "tune":
            report = torch_tvm.tune(model, inputs, args.work_dir, trials=args.trials,
                                    time_budget_s=args.time_budget,
                                    max_trials_per_task=args.trials_per_task,
                                    cost_model=args.cost_model, progress=not args.no_progress,
                                    name=args.name)
            if args.no_progress:
                print(report)
            print(f"apply it with: torch_tvm.enable(tuning_db={args.work_dir!r}) "
                  f"or TORCH_TVM_TUNING_DB={args.work_dir}")
        else:
            torch_tvm.enable(tuning_db=args.tuning_db)
            print(torch_tvm.explain(model, inputs))
    except (ValueError, RuntimeError) as e:
        print(f"torch-tvm: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
