"""The measuring loop of the pause benchmarks (snapshot_pause.py, checkpoint_pause.py): how long
another thread's ``select`` + ``feedback`` stall while one thread repeats a slow step on the same
router.

The main thread routes in ``tenant-<i>`` contexts (``i`` cycling over ``contexts``, all created
beforehand) and records the longest gap between two of its decisions; the step runs on a second
thread. :func:`quiet` runs the same loop for a while with nothing else: the gaps the machine
alone causes, the baseline each figure is read against.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pickllm import Router


@dataclass(frozen=True)
class Pause:
    """What the routing thread saw while the step ran: its longest gap, its decisions and the
    elapsed time (seconds); and the step's mean time."""

    longest: float
    decisions: int
    elapsed: float
    step: float

    @property
    def rate(self) -> int:
        """Decisions per second."""
        return round(self.decisions / self.elapsed) if self.elapsed else 0


def route_until(router: Router, contexts: int, done: threading.Event) -> tuple[float, int]:
    """Route until ``done``: the longest gap between two decisions, and their number."""
    longest, decisions, last = 0.0, 0, time.perf_counter()
    while not done.is_set():
        decision = router.select(f"tenant-{decisions % contexts:07d}")
        router.feedback(decision, accuracy=0.5)
        now = time.perf_counter()
        longest = max(longest, now - last)
        last = now
        decisions += 1
    return longest, decisions


def pause_during(router: Router, contexts: int, step: Callable[[], object], rounds: int) -> Pause:
    """Route while another thread runs ``step`` ``rounds`` times, back to back."""
    done = threading.Event()
    spent: list[float] = []

    def repeat() -> None:
        try:
            for _ in range(rounds):
                started = time.perf_counter()
                step()
                spent.append(time.perf_counter() - started)
        finally:
            done.set()

    worker = threading.Thread(target=repeat)
    started = time.perf_counter()
    worker.start()
    longest, decisions = route_until(router, contexts, done)
    worker.join()
    if len(spent) < rounds:
        raise RuntimeError("the measured step failed (see the traceback above)")
    return Pause(longest, decisions, time.perf_counter() - started, sum(spent) / rounds)


def quiet(router: Router, contexts: int, seconds: float) -> Pause:
    """The same loop for ``seconds`` with nothing else running."""
    done = threading.Event()
    timer = threading.Timer(seconds, done.set)
    started = time.perf_counter()
    timer.start()
    longest, decisions = route_until(router, contexts, done)
    return Pause(longest, decisions, time.perf_counter() - started, 0.0)


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 1)
