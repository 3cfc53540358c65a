"""The pause other threads see while a shared-state replica checkpoints a large router, and while
a replica loads that checkpoint (docs/performance.md, issue 21).

A router with ``--contexts`` learned contexts shares its state through a real redis-server
(started here on a free port). One thread repeats a step ``--rounds`` times while the main
thread keeps routing (``select`` + ``feedback`` on the same router) and records the longest gap
between two of its decisions (the loop of benches/pauses.py):

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pauses import ms, pause_during, quiet

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

    # The applier thread checkpoints and loads between two batches of events, never while it
    # applies one: the steps measured here run from another thread, so they take turns with the
    # applier's batches as they would in it.
    applier_turn = threading.Lock()
    apply = replica._apply

    def apply_in_turn(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        with applier_turn:
            apply(entries)

    replica._apply = apply_in_turn  # type: ignore[method-assign]

    def checkpoint() -> None:
        with applier_turn:
            replica._since_checkpoint = replica.config.checkpoint_every
            replica._maybe_checkpoint(client)

    def load() -> None:
        with applier_turn, replica._applied_cond:
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

    results: dict[str, object] = {"contexts": contexts, "learned_bytes": learned_bytes}
    elapsed = 0.0
    for name, step in (("checkpoint", checkpoint), ("load", load), ("python_json", python_json)):
        pause = pause_during(router, contexts, step, rounds)
        elapsed += pause.step * rounds
        results[f"{name}_longest_pause_ms"] = ms(pause.longest)
        results[f"{name}_ms"] = ms(pause.step)
    results["quiet_longest_gap_ms"] = ms(quiet(router, contexts, elapsed / 3).longest)
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
