"""Child process for the time-boxed TVM relax_dynamo peer.

The parent (a benchmark worker) starts this script, waits for READY, sends "compile"
and waits at most --relax-dynamo-timeout seconds for the answer; if the answer does
not come it kills this process and records "timeout". Afterwards the parent drives
it with one "run" line per timed iteration, interleaved with the other peers (the
parent blocks while this process runs, so only one peer uses the cores at a time).
The time reported for a "run" is measured here around the model call only.

Protocol: parent -> child lines on stdin ("compile", "run", "quit");
child -> parent lines on stdout starting with "@@RD@@ " followed by JSON.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
import warnings

TAG = "@@RD@@ "


def say(**kw):
    sys.stdout.write(TAG + json.dumps(kw) + "\n")
    sys.stdout.flush()


def main():
    spec_path, threads = sys.argv[1], int(sys.argv[2])
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(threads)
    spec = torch.load(spec_path, weights_only=False)
    model, x, ref = spec["model"], spec["x"], spec["ref"]
    import tvm  # noqa: F401
    from tvm.relax.frontend.torch import relax_dynamo

    say(event="ready", tvm=tvm.__version__)
    compiled = None
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "compile":
            try:
                t0 = time.perf_counter()
                compiled = torch.compile(model, backend=relax_dynamo())
                with torch.no_grad():
                    y = compiled(x)
                first = time.perf_counter() - t0
                diff = float((y.detach().float() - ref.float()).abs().max())
                say(event="compiled", ok=True, first_call_s=first, max_abs_diff=diff)
            except BaseException as e:  # noqa: BLE001 - any failure is a result here
                tb = traceback.format_exc(limit=3)
                say(event="compiled", ok=False, error=f"{type(e).__name__}: {e}"[:2000],
                    traceback=tb[-2000:])
        elif cmd == "run":
            try:
                with torch.no_grad():
                    t0 = time.perf_counter()
                    compiled(x)
                    dt = time.perf_counter() - t0
                say(event="ran", ok=True, t=dt)
            except BaseException as e:  # noqa: BLE001
                say(event="ran", ok=False, error=f"{type(e).__name__}: {e}"[:2000])
        elif cmd == "quit":
            break
    sys.stdout.flush()
    os._exit(0)  # skip slow interpreter/TVM teardown


if __name__ == "__main__":
    main()
