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

Prints one JSON object. With ``--trace`` (to find what causes a long gap; it slows the routing
loop, so figures come from runs without it), also prints to stderr, for each longest gap, what
the routing thread did meanwhile (ran, waited for a CPU the system gave to something else, or
slept: waiting for the GIL or a lock), the CPU time the whole process used, and what overlapped
it: the applier's batches and entries, its publisher's sends, the load's and checkpoint's
phases, the interpreter's garbage collections, and the moments a separate sleeping process
(holding nothing of ours) woke over 10 ms late; each as its offset from the gap's start.

    python benches/checkpoint_pause.py [--contexts 100000] [--rounds 3] [--trace]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pauses import Pause, ms, pause_during, quiet

from pickllm import RedisState, Router
from pickllm.state.replica import Replica
from redis_servers import RedisServer

MODELS = ["model-a", "model-b", "model-c", "model-d"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contexts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trace", action="store_true", help="what overlapped each longest gap")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder), persistent=False)
        trace = Trace() if args.trace else None
        try:
            measure(server, args.contexts, args.rounds, trace)
        finally:
            server.stop()
            if trace is not None:
                trace.stop()


#: A separate process that sleeps 1 ms at a time and prints when it woke more than 10 ms late
#: (``time.perf_counter``, the same monotonic clock in every process): what the machine alone
#: does to a process that holds no lock of ours.
SAMPLER = """
import sys, time
last = time.perf_counter()
while True:
    time.sleep(0.001)
    now = time.perf_counter()
    if now - last > 0.011:
        print(last, now, flush=True)
    last = now
"""


class Trace:
    """Spans (what, start, end) of the work other threads do, to read each longest gap against."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)
        self._sampler = subprocess.Popen(
            [sys.executable, "-c", SAMPLER], stdout=subprocess.PIPE, text=True
        )
        self._late: list[tuple[float, float]] = []
        threading.Thread(target=self._read_sampler, daemon=True).start()

    def _read_sampler(self) -> None:
        assert self._sampler.stdout is not None
        for line in self._sampler.stdout:
            start, end = map(float, line.split())
            self._late.append((start, end))

    def stop(self) -> None:
        self._sampler.kill()
        self._sampler.wait()

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            what = f"gc gen {info['generation']} ({info['collected']} collected)"
            self.spans.append((what, self._gc_started, time.perf_counter()))

    def timed(self, what: Callable[[Any], str], call: Callable[..., Any]) -> Callable[..., Any]:
        def timed_call(*args: Any) -> Any:
            started = time.perf_counter()
            try:
                return call(*args)
            finally:
                self.spans.append((what(args), started, time.perf_counter()))

        return timed_call

    def report(self, name: str, pause: Pause) -> None:
        time.sleep(1.0)  # the sampler's lines and the spans that overlap the gap have arrived
        begin, end = pause.gap
        overlapping = [
            {"what": what, "from_ms": ms(start - begin), "ms": ms(stop - start)}
            for what, start, stop in self.spans
            if start < end and stop > begin and stop - start > 1e-3
        ]
        overlapping += [
            {
                "what": "sampler process woke late",
                "from_ms": ms(start - begin),
                "ms": ms(stop - start),
            }
            for start, stop in self._late
            if start < end and stop > begin
        ]
        times = pause.gap_times
        assert times is not None
        gap = {
            "gap_ms": ms(pause.longest),
            "routing_thread_ran_ms": ms(times.ran),
            "routing_thread_waited_for_a_cpu_ms": ms(times.waited_for_cpu),
            "routing_thread_slept_ms": ms(pause.longest - times.ran - times.waited_for_cpu),
            "process_cpu_ms": ms(times.process_cpu),
        }
        print(json.dumps({"step": name, **gap, "overlapping": overlapping}), file=sys.stderr)
        self.spans.clear()


class TimedCore:
    """The replica's core with its slow calls timed (``--trace``)."""

    def __init__(self, core: Any, trace: Trace) -> None:
        self._core = core
        self.restore_learned = trace.timed(lambda _: "restore_learned", core.restore_learned)
        self.learned = trace.timed(lambda _: "learned", core.learned)
        self.apply_entry = trace.timed(
            lambda args: f"apply_entry ({len(args[0])} bytes)", core.apply_entry
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._core, name)


def measure(server: RedisServer, contexts: int, rounds: int, trace: Trace | None) -> None:
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
    if trace is not None:
        apply = trace.timed(lambda args: f"apply {len(args[0])} entries", apply)
        replica._core = TimedCore(replica._core, trace)  # type: ignore[assignment]
        read_round = replica._read_round
        replica._read_round = trace.timed(lambda _: "applier read round", read_round)  # type: ignore[method-assign]
        publisher = replica._publisher_client
        pipeline = publisher.pipeline

        def timed_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            def timed_execute(*args: Any, **kwargs: Any) -> Any:
                entries = len(pipe)
                return trace.timed(lambda _: f"publish {entries} entries", execute)(*args, **kwargs)

            pipe.execute = timed_execute
            return pipe

        publisher.pipeline = timed_pipeline  # type: ignore[method-assign]

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
    if trace is not None:
        started = time.perf_counter()
        gc.collect()
        heap = {
            "tracked_objects": len(gc.get_objects()),
            "full_gc_ms": ms(time.perf_counter() - started),
        }
        print(json.dumps(heap), file=sys.stderr)
    learned_bytes = len(router._core.learned())

    results: dict[str, object] = {"contexts": contexts, "learned_bytes": learned_bytes}
    elapsed = 0.0
    for name, step in (("checkpoint", checkpoint), ("load", load), ("python_json", python_json)):
        if trace is not None:
            step = trace.timed(lambda _, name=name: name, step)
            trace.spans.clear()
        pause = pause_during(router, contexts, step, rounds, cpu=trace is not None)
        if trace is not None:
            trace.report(name, pause)
        elapsed += pause.step * rounds
        results[f"{name}_longest_pause_ms"] = ms(pause.longest)
        results[f"{name}_ms"] = ms(pause.step)
    calm = quiet(router, contexts, elapsed / 3, cpu=trace is not None)
    if trace is not None:
        trace.report("quiet", calm)
    results["quiet_longest_gap_ms"] = ms(calm.longest)
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
