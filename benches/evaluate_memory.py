"""Peak memory and time of ``pickllm evaluate`` on decision logs of 100k and 1M decisions, and
of the decision log writer under a producer faster than its disk (docs/performance.md).

Part 1 writes each log with a real ``Router(decision_log=...)`` (a uniform logger over 3 models
and 20 contexts, feedback for every decision but a few), then runs, each in a fresh process
whose peak RSS ``os.wait4`` reports:

* ``pickllm evaluate --log DIR`` (the streamed evaluation), and
* the baseline in the same run: the same evaluation over ``read_log(DIR)``, the whole log in
  memory (what ``pickllm evaluate`` did before; ``--baseline-max`` caps the sizes it runs at,
  it needs gigabytes at 1M).

Part 2 (``--writer``): a thread routes as fast as it can for ``--writer-seconds`` with a log of
the default ``max_queue``; the peak RSS, the records written while it ran and those dropped.

    python benches/evaluate_memory.py [--sizes 100000,1000000] [--baseline-max 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ["big", "mid", "small"]

_BASELINE = """
import sys
from pickllm.evaluate import evaluate, format_evaluation
from pickllm.logs import read_log
print(format_evaluation(evaluate(read_log(sys.argv[1]))))
"""

_WRITE = """
import sys
from pickllm import QLearning, Router
n, folder = int(sys.argv[1]), sys.argv[2]
uniform = QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False)
truth = {"big": 0.8, "mid": 0.6, "small": 0.4}
cost = {"big": 0.01, "mid": 0.002, "small": 0.0005}
with Router(["big", "mid", "small"], policy=uniform, seed=1, decision_log=folder,
            max_pending=1_000) as router:
    select, feedback = router.select, router.feedback
    for i in range(n):
        d = select(f"tenant-{i % 20}")
        if i % 1000 != 999:  # a few decisions never answered
            good = ((i * 2654435761) % 1000) / 1000 < truth[d.model]
            feedback(d, accuracy=float(good), cost=cost[d.model], latency=0.1 + (i % 7) / 10)
        if i % 20_000 == 0:
            router.decision_log.flush()  # the bench measures evaluate, not the writer's drops
print(router.decision_log.dropped)
"""

_WRITER = """
import json, resource, sys, threading, time, tempfile
from pathlib import Path
from pickllm import Router
seconds = float(sys.argv[1])
folder = Path(tempfile.mkdtemp())
router = Router(["big", "mid", "small"], seed=1, decision_log=folder)
log = router.decision_log
stop = time.monotonic() + seconds
decisions = 0
written_meanwhile = 0
select, feedback = router.select, router.feedback
while time.monotonic() < stop:
    for _ in range(10_000):
        feedback(select("x"), accuracy=1.0)
    decisions += 10_000
written_meanwhile = sum(f.stat().st_size for f in folder.glob("*.jsonl"))
dropped_meanwhile = log.dropped
router.close()
print(json.dumps({
    "seconds": seconds, "records": 2 * decisions, "dropped_while_running": dropped_meanwhile,
    "bytes_on_disk_while_running": written_meanwhile,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run(command: list[str]) -> tuple[float, float, str]:
    """Peak RSS (MB) and wall seconds of ``command`` in a fresh process, and its stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    out = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command} failed ({process.returncode})")
    return usage.ru_maxrss / 1024, time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--baseline-max", type=int, default=100_000)
    parser.add_argument("--writer", action="store_true", help="also bench the writer")
    parser.add_argument("--writer-seconds", type=float, default=20.0)
    args = parser.parse_args()
    python = sys.executable
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            dropped = int(run([python, "-c", _WRITE, str(size), folder])[2])
            log_mb = sum(f.stat().st_size for f in Path(folder).iterdir()) / 2**20
            rss, seconds, _ = run([python, "-m", "pickllm", "evaluate", "--log", folder])
            row = {
                "decisions": size,
                "log_mb": round(log_mb, 1),
                "writer_dropped": dropped,
                "evaluate_peak_rss_mb": round(rss, 1),
                "evaluate_seconds": round(seconds, 1),
            }
            if size <= args.baseline_max:
                rss, seconds, _ = run([python, "-c", _BASELINE, folder])
                row |= {
                    "baseline_read_log_peak_rss_mb": round(rss, 1),
                    "baseline_read_log_seconds": round(seconds, 1),
                }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.writer:
        print(run([python, "-c", _WRITER, str(args.writer_seconds)])[2].strip(), flush=True)


if __name__ == "__main__":
    main()
