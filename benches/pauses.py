"""The measuring loop of the pause benchmarks (snapshot_pause.py, checkpoint_pause.py): how long
another thread's ``select`` + ``feedback`` stall while one thread repeats a slow step on the same
router.

The main thread routes in ``tenant-<i>`` contexts (``i`` cycling over ``contexts``, all created
beforehand) and records the longest gap between two of its decisions; the step runs on a second
thread. :func:`quiet` runs the same loop for a while with nothing else: the gaps the machine
alone causes, the baseline each figure is read against.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from pickllm import Router


@dataclass(frozen=True)
class GapTimes:
    """Within a gap (seconds): the time the routing thread ran, the time it was ready to run but
    the system ran something else (its run-queue wait, from ``/proc/thread-self/schedstat``;
    the rest of the gap it slept, waiting for the GIL or a lock), and the CPU time the whole
    process used."""

    ran: float
    waited_for_cpu: float
    process_cpu: float


class _Clock:
    """The routing thread's schedstat (run and run-queue wait, ns) and the process's CPU time."""

    def __init__(self) -> None:
        self._schedstat = os.open("/proc/thread-self/schedstat", os.O_RDONLY)

    def read(self) -> tuple[float, float, float]:
        ran, waited = os.pread(self._schedstat, 100, 0).split()[:2]
        return int(ran) / 1e9, int(waited) / 1e9, time.process_time()

    def close(self) -> None:
        os.close(self._schedstat)


@dataclass(frozen=True)
class Pause:
    """What the routing thread saw while the step ran: its longest gap, when it began and ended
    (``time.perf_counter``) and, if asked for (reading them costs system calls per decision),
    where the routing thread was meanwhile (:class:`GapTimes`); its decisions and the elapsed
    time (seconds); and the step's mean time."""

    longest: float
    gap: tuple[float, float]
    gap_times: GapTimes | None
    decisions: int
    elapsed: float
    step: float

    @property
    def rate(self) -> int:
        """Decisions per second."""
        return round(self.decisions / self.elapsed) if self.elapsed else 0


def route_until(
    router: Router, contexts: int, done: threading.Event, started: float, cpu: bool = False
) -> Pause:
    """Route until ``done``: the longest gap between two decisions (with its CPU times if
    ``cpu``), and the number of decisions."""
    clock = _Clock() if cpu else None
    longest, decisions, last = 0.0, 0, time.perf_counter()
    gap, gap_times = (last, last), None
    last_times = clock.read() if clock else (0.0, 0.0, 0.0)
    while not done.is_set():
        decision = router.select(f"tenant-{decisions % contexts:07d}")
        router.feedback(decision, accuracy=0.5)
        now = time.perf_counter()
        times = clock.read() if clock else last_times
        if now - last > longest:
            longest, gap = now - last, (last, now)
            if clock:
                gap_times = GapTimes(*(n - b for n, b in zip(times, last_times, strict=True)))
        last, last_times = now, times
        decisions += 1
    if clock:
        clock.close()
    return Pause(longest, gap, gap_times, decisions, time.perf_counter() - started, 0.0)


def pause_during(
    router: Router, contexts: int, step: Callable[[], object], rounds: int, cpu: bool = False
) -> Pause:
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
    pause = route_until(router, contexts, done, started, cpu)
    worker.join()
    if len(spent) < rounds:
        raise RuntimeError("the measured step failed (see the traceback above)")
    return replace(pause, elapsed=time.perf_counter() - started, step=sum(spent) / rounds)


def quiet(router: Router, contexts: int, seconds: float, cpu: bool = False) -> Pause:
    """The same loop for ``seconds`` with nothing else running."""
    done = threading.Event()
    timer = threading.Timer(seconds, done.set)
    started = time.perf_counter()
    timer.start()
    return route_until(router, contexts, done, started, cpu)


def ms(seconds: float) -> float:
    return round(seconds * 1e3, 1)
