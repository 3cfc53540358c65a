"""The pause other threads see while a large router is snapshotted (docs/performance.md).

One thread takes ``snapshot()`` (then, in a second phase, ``save()``) of a router with N
contexts, repeatedly; the main thread keeps routing (``select`` + ``feedback`` on the same
router) and records the longest gap between two of its decisions and its rate. Two baselines in
the same run: the time one ``snapshot()`` takes (the pause every thread saw when the whole
snapshot held the GIL and the router's lock), and the longest gap and the rate of the same loop
over the same time without snapshots (what the machine alone costs; large on a busy machine).
Prints one JSON object.

    python benches/snapshot_pause.py [--contexts 500000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

from pickllm import Router


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    router = Router(["model-a", "model-b", "model-c", "model-d"], seed=7, max_pending=16)
    for i in range(args.contexts):
        router.feedback(router.select(f"tenant-{i:07d}"), accuracy=1.0)

    started = time.perf_counter()
    size = len(router.snapshot())
    snapshot_seconds = time.perf_counter() - started

    def route_until(done: threading.Event) -> tuple[float, int]:
        """The longest gap between two decisions, and their number, until `done`."""
        longest = 0.0
        decisions = 0
        last = time.perf_counter()
        while not done.is_set():
            d = router.select(f"tenant-{decisions % args.contexts:07d}")
            router.feedback(d, accuracy=0.5)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now
            decisions += 1
        return longest, decisions

    def rate(decisions: int, seconds: float) -> float:
        return round(decisions / seconds)

    def pause_during(operation: str) -> tuple[float, int, float]:
        """Longest gap and decisions while another thread repeats `operation`, and its time."""
        done = threading.Event()
        folder = tempfile.TemporaryDirectory()

        def repeat() -> None:
            for _ in range(args.rounds):
                if operation == "save":
                    router.save(Path(folder.name) / "router.pickllm")
                else:
                    router.snapshot()
            done.set()

        worker = threading.Thread(target=repeat)
        started = time.perf_counter()
        worker.start()
        longest, decisions = route_until(done)
        worker.join()
        folder.cleanup()
        return longest, decisions, time.perf_counter() - started

    longest, decisions, elapsed = pause_during("snapshot")
    save_longest, save_decisions, save_elapsed = pause_during("save")

    quiet = threading.Event()
    threading.Timer(elapsed, quiet.set).start()
    quiet_started = time.perf_counter()
    quiet_longest, quiet_decisions = route_until(quiet)
    quiet_elapsed = time.perf_counter() - quiet_started
    print(
        json.dumps(
            {
                "contexts": args.contexts,
                "snapshot_bytes": size,
                "snapshot_ms": round(snapshot_seconds * 1e3, 1),
                "longest_pause_ms": round(longest * 1e3, 1),
                "pause_over_snapshot": round(longest / snapshot_seconds, 3),
                "longest_pause_during_save_ms": round(save_longest * 1e3, 1),
                "save_pause_over_snapshot": round(save_longest / snapshot_seconds, 3),
                "longest_gap_without_snapshots_ms": round(quiet_longest * 1e3, 1),
                "decisions_per_s_during_snapshots": rate(decisions, elapsed),
                "decisions_per_s_during_saves": rate(save_decisions, save_elapsed),
                "decisions_per_s_without_snapshots": rate(quiet_decisions, quiet_elapsed),
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
