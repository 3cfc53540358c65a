"""The pause other threads see while a large router is snapshotted (docs/performance.md).

One thread takes ``snapshot()`` (then, in a second phase, ``save()``) of a router with N
contexts, repeatedly; the main thread keeps routing (``select`` + ``feedback`` on the same
router) and records the longest gap between two of its decisions and its rate (the loop of
benches/pauses.py). Two baselines in the same run: the time one ``snapshot()`` takes (the pause
every thread saw when the whole snapshot held the GIL and the router's lock), and the longest gap
and the rate of the same loop over the same time without snapshots (what the machine alone
costs; large on a busy machine). Prints one JSON object.

    python benches/snapshot_pause.py [--contexts 500000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pauses import ms, pause_during, quiet

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

    snapshots = pause_during(router, args.contexts, router.snapshot, args.rounds)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "router.pickllm"
        saves = pause_during(router, args.contexts, lambda: router.save(path), args.rounds)
    alone = quiet(router, args.contexts, snapshots.elapsed)
    print(
        json.dumps(
            {
                "contexts": args.contexts,
                "snapshot_bytes": size,
                "snapshot_ms": ms(snapshot_seconds),
                "longest_pause_ms": ms(snapshots.longest),
                "pause_over_snapshot": round(snapshots.longest / snapshot_seconds, 3),
                "longest_pause_during_save_ms": ms(saves.longest),
                "save_pause_over_snapshot": round(saves.longest / snapshot_seconds, 3),
                "longest_gap_without_snapshots_ms": ms(alone.longest),
                "decisions_per_s_during_snapshots": snapshots.rate,
                "decisions_per_s_during_saves": saves.rate,
                "decisions_per_s_without_snapshots": alone.rate,
                "rounds": args.rounds,
            }
        )
    )


if __name__ == "__main__":
    main()
