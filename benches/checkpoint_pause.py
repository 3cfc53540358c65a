"""The pause other threads see while a shared-state replica checkpoints a large router, and while
a replica loads that checkpoint (docs/performance.md, issue 21).

A router with ``--contexts`` learned contexts shares its state through a real redis-server
(started here on a free port). One thread repeats a step ``--rounds`` times while the main
thread keeps routing (``select`` + ``feedback`` on the same router) and records the longest gap
between two of its decisions:

- ``checkpoint``: the applier's checkpoint as the code does it now (``Replica._maybe_checkpoint``:
  the learned part captured under the lock and encoded by the core detached from the
  interpreter, stored as bytes under its own key);
- ``load``: loading that checkpoint (``Replica._load``: parsed detached, installed under the lock);
- baseline ``python_json``: the checkpoint as it was before (the learned part decoded with
  ``json.loads`` into the document and the document encoded with ``json.dumps``, under the GIL),
  in the same run;
- baseline ``quiet``: the same loop for as long without any of them (what the machine alone
  costs).

Prints one JSON object.

    python benches/checkpoint_pause.py [--contexts 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pickllm import RedisState, Router
from pickllm.state.replica import Replica
from redis_servers import RedisServer

MODELS = ["model-a", "model-b", "model-c", "model-d"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder), persistent=False)
        try:
            measure(server, args.contexts, args.rounds)
        finally:
            server.stop()


def measure(server: RedisServer, contexts: int, rounds: int) -> None:
    state = RedisState(url=server.url, name="bench", checkpoint_every=10**9, buffer=10**6)
    router = Router(MODELS, seed=7, max_pending=16, shared=state)
    for i in range(contexts):
        router.feedback(router.select(f"tenant-{i:07d}"), accuracy=1.0)
    router.sync(timeout=600)
    replica = router._shared
    assert isinstance(replica, Replica)
    client = replica._applier_client

    def checkpoint() -> None:
        replica._since_checkpoint = replica.config.checkpoint_every
        replica._maybe_checkpoint(client)

    def load() -> None:
        with replica._applied_cond:
            replica._load(client)

    def python_json() -> None:
        """The checkpoint document as the code built it before (issue 21: 5.7 s at 100k)."""
        document = {
            "v": 1,
            "position": "0-0",
            "offset": replica._offset,
            "seen": replica._seen,
            "config": json.loads(router._core.config_json()),
            "learned": json.loads(router._core.learned()),
        }
        client.set("pickllm:bench:baseline", json.dumps(document))

    checkpoint()  # stored once, so that `load` has one
    learned_bytes = len(router._core.learned())

    def route_until(done: threading.Event) -> tuple[float, int]:
        longest, decisions, last = 0.0, 0, time.perf_counter()
        while not done.is_set():
            decision = router.select(f"tenant-{decisions % contexts:07d}")
            router.feedback(decision, accuracy=0.5)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now
            decisions += 1
        return longest, decisions

    def pause_during(step: Callable[[], None]) -> tuple[float, float]:
        """The longest gap while another thread repeats ``step``; its mean time."""
        done = threading.Event()
        spent: list[float] = []

        def repeat() -> None:
            for _ in range(rounds):
                started = time.perf_counter()
                step()
                spent.append(time.perf_counter() - started)
            done.set()

        worker = threading.Thread(target=repeat)
        worker.start()
        longest, _ = route_until(done)
        worker.join()
        return longest, sum(spent) / len(spent)

    results: dict[str, object] = {"contexts": contexts, "learned_bytes": learned_bytes}
    elapsed = 0.0
    for name, step in (("checkpoint", checkpoint), ("load", load), ("python_json", python_json)):
        longest, mean = pause_during(step)
        elapsed += mean * rounds
        results[f"{name}_longest_pause_ms"] = round(longest * 1e3, 1)
        results[f"{name}_ms"] = round(mean * 1e3, 1)
    quiet = threading.Event()
    threading.Timer(elapsed / 3, quiet.set).start()
    results["quiet_longest_gap_ms"] = round(route_until(quiet)[0] * 1e3, 1)
    baseline = results["python_json_longest_pause_ms"]
    if baseline:  # none in a tiny smoke run, where the loop may not run at all meanwhile
        results["checkpoint_pause_over_python_json_pause"] = round(
            results["checkpoint_longest_pause_ms"] / baseline,  # type: ignore[operator]
            3,
        )
    results["rounds"] = rounds
    router.close()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
