"""The decision log writer: records go on a bounded queue, a background thread writes them.

The router's hot path only appends a tuple of the objects it already has to a deque (no
formatting, no I/O, no lock); when the queue is full the record is dropped and counted, so
``select`` never waits on a disk. The writer thread wakes every ``interval`` seconds and writes
what was queued when it woke, ``BATCH`` records at a time (formatted as JSON Lines, written,
flushed), starting a new file when the current one passes ``max_bytes``.

Memory is bounded: at most ``max_queue`` records wait in the queue and at most ``BATCH``
formatted lines in the writer's hands. A drain never chases a producer that is faster than the
disk: it takes what was queued when it began, so records reach the file while the producer runs,
and what does not fit in the queue meanwhile is dropped, counted in :attr:`DecisionLog.dropped`
(the gateway exports it as ``pickllm_decision_log_dropped_records_total``) and reported by a
warning at most once every ``DROP_REPORT_INTERVAL`` seconds.

:meth:`DecisionLog.close` (called by ``Router.close``/``aclose``, the router's ``with`` block,
and at interpreter exit) writes what is left and closes the file.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Any, Final

from pickllm._core import Decision, RouterCore
from pickllm.errors import ConfigError
from pickllm.logs.schema import SCHEMA_VERSION

__all__ = ["BATCH", "DROP_REPORT_INTERVAL", "DecisionLog", "current_prompt"]

logger = logging.getLogger("pickllm")

#: Records the writer formats and writes at a time: the bound on formatted lines in memory.
BATCH: Final = 1024
#: Seconds between two warnings about dropped records (the first is logged at once).
DROP_REPORT_INTERVAL: Final = 60.0

#: The prompt of the query being routed, set by ``Router.route``/``aroute`` while the log
#: records prompts (the decision is made inside the route loop, which does not pass it on).
current_prompt: ContextVar[object] = ContextVar("pickllm_current_prompt", default=None)

_OPEN: Final[weakref.WeakSet[DecisionLog]] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for log in list(_OPEN):
        log.close()


class DecisionLog:
    """An append-only, size-rotated JSON Lines log of one router's decisions and feedback
    (see :mod:`pickllm.logs.schema`), written off the hot path into the folder ``path``.

    Args:
        path: the folder; created if missing. Several routers may share it: each writes its
            own files, ``decisions-<router id>-<n>.jsonl``.
        max_bytes: a file is closed and the next one started once it holds this many bytes.
        max_queue: records waiting to be written; beyond it records are dropped and counted in
            :attr:`dropped` (a full disk or a stalled writer never slows ``select``). With
            ``BATCH`` formatted lines in the writer's hands, the log never holds more than
            ``max_queue + BATCH`` records in memory.
        prompts: also log the prompt of routed queries (off by default: prompts may be private).
        interval: seconds the writer sleeps between batches.

    >>> import tempfile
    >>> from pickllm import Router
    >>> folder = tempfile.mkdtemp()
    >>> with Router(["big", "small"], seed=3, decision_log=folder) as router:
    ...     d = router.select(context="math")
    ...     _ = router.feedback(d, accuracy=1.0, cost=0.01, latency=0.5)
    >>> from pickllm.logs import read_log
    >>> [(r.context, r.model, r.accuracy) for r in read_log(folder).records] == [
    ...     ("math", d.model, 1.0)]
    True
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_bytes: int = 64 * 2**20,
        max_queue: int = 100_000,
        prompts: bool = False,
        interval: float = 0.05,
    ) -> None:
        for name, value in (("max_bytes", max_bytes), ("max_queue", max_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"DecisionLog.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(interval, int | float) or not 0 < interval <= 60:
            raise ConfigError(f"DecisionLog.interval must be in (0, 60] seconds, got {interval!r}")
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"decision_log must be a folder, got the file {str(self.path)!r}")
        self.max_bytes = max_bytes
        self.max_queue = max_queue
        self.prompts = bool(prompts)
        self.interval = float(interval)
        #: The id written in every record of this log.
        self.router_id = secrets.token_hex(6)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._dropped = 0
        self._dropped_lock = threading.Lock()
        self._header: dict[str, Any] | None = None
        self._models: tuple[str, ...] = ()
        self._file: IO[str] | None = None
        self._files = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        #: max_queue while open, 0 once closed (so records after close are dropped).
        self._bound = max_queue
        self._drain_lock = threading.Lock()
        #: Drops already reported by a warning, and when (monotonic seconds).
        self._reported = 0
        self._reported_at = -math.inf

    # ==================== Called by the router ====================

    def start(self, models: Sequence[str], policy: dict[str, Any], reward: dict[str, Any]) -> None:
        """Open the first file and start the writer (once; a log belongs to one router)."""
        if self._thread is not None or self._closed:
            raise ConfigError("a DecisionLog belongs to one router: give each router its own")
        self._models = tuple(models)
        self._header = {
            "schema": SCHEMA_VERSION,
            "type": "router",
            "router": self.router_id,
            "models": list(models),
            "policy": policy,
            "reward": reward,
        }
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._rotate()
        except OSError as error:
            raise ConfigError(
                f"cannot write a decision log in {str(self.path)!r}: {error}"
            ) from None
        self._thread = threading.Thread(
            target=self._run, name=f"pickllm-decision-log-{self.router_id}", daemon=True
        )
        self._thread.start()
        _OPEN.add(self)

    def wrap(self, core: RouterCore) -> tuple[Any, Any]:
        """``select`` and ``feedback`` of ``core`` that also queue a record: the hot path of a
        logging router. Everything is bound to locals once, so a call costs the core's call, a
        read of the learner's distribution (select only), a clock read and a deque append.

        The distribution is read right after the draw: feedback from another thread may land
        in between, so ``probabilities`` is as of just after the decision; ``probability`` is
        always the draw's own."""
        queue, now, drop = self._queue, time.time, self._drop
        core_select, probabilities = core.select, core.probabilities
        core_feedback = core.feedback
        log = self

        def select(
            context: str | None = None,
            *,
            exclude: Iterable[str] | None = None,
            allowed: Iterable[str] | None = None,
            prompt: None = None,
        ) -> Decision:
            # Materialized first: the core consumes iterators, and the record needs them again.
            if exclude is not None and not isinstance(exclude, str):
                exclude = tuple(exclude)
            if allowed is not None and not isinstance(allowed, str):
                allowed = tuple(allowed)
            # The core refuses a prompt (this router has no prompt contexts), naming the fix.
            decision = core_select(context, exclude=exclude, allowed=allowed, prompt=prompt)
            if len(queue) < log._bound:
                text = current_prompt.get() if log.prompts else None
                distribution = probabilities(decision.context)
                queue.append(("d", now(), decision, distribution, exclude, allowed, text))
            else:
                drop()
            return decision

        def feedback(
            decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
        ) -> float:
            reward = core_feedback(decision, accuracy=accuracy, cost=cost, latency=latency)
            if len(queue) < log._bound:
                queue.append(("f", now(), decision.id, accuracy, cost, latency, reward))
            else:
                drop()
            return reward

        return select, feedback

    def _drop(self) -> None:
        # len + append is not one atomic step, so concurrent threads may overshoot the bound by
        # a few records; the bound exists to cap memory, which that does not threaten.
        with self._dropped_lock:
            self._dropped += 1

    # ==================== Inspection and shutdown ====================

    @property
    def dropped(self) -> int:
        """Records dropped because the queue was full, the log closed, or a write failed."""
        return self._dropped

    def flush(self) -> None:
        """Write everything queued so far (from the caller's thread) and flush the file."""
        if self._thread is not None and not self._closed:
            self._drain()

    def close(self) -> None:
        """Write what is queued, stop the writer and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._bound = 0
        _OPEN.discard(self)
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._drain()
        if self._file is not None:
            self._file.close()
            self._file = None

    # ==================== The writer thread ====================

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._drain()

    def _drain(self) -> None:
        with self._drain_lock:
            # What is queued now, not what the producer adds meanwhile: a faster producer would
            # otherwise keep one drain going forever (nothing flushed, lines piling up).
            left = len(self._queue)
            while left > 0 and self._file is not None:
                take = min(left, BATCH)
                left -= take
                pop = self._queue.popleft
                self._write([self._format(pop()) for _ in range(take)])
            self._report_drops()

    def _write(self, lines: list[str]) -> None:
        assert self._file is not None
        try:
            for line in lines:
                self._file.write(line)
                if self._file.tell() >= self.max_bytes:
                    self._rotate()
            self._file.flush()
        except OSError as error:
            with self._dropped_lock:
                self._dropped += len(lines)
            logger.error("pickllm: decision log write failed: %s", error)

    def _report_drops(self) -> None:
        """A warning when records were dropped since the last one, at most one per
        ``DROP_REPORT_INTERVAL`` seconds (a log that cannot keep up must not flood the logs)."""
        dropped = self._dropped
        now = time.monotonic()
        if dropped == self._reported or now - self._reported_at < DROP_REPORT_INTERVAL:
            return
        logger.warning(
            "pickllm: decision log %s dropped %d records (%d in all): the queue of %d was "
            "full, the writer cannot keep up with the decisions (raise max_queue or use a "
            "faster disk)",
            self.path,
            dropped - self._reported,
            dropped,
            self.max_queue,
        )
        self._reported, self._reported_at = dropped, now

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        self._files += 1
        name = f"decisions-{self.router_id}-{self._files:05d}.jsonl"
        self._file = (self.path / name).open("x", encoding="utf-8")
        assert self._header is not None
        self._file.write(_line(self._header | {"time": time.time()}))

    def _format(self, item: tuple[Any, ...]) -> str:
        if item[0] == "f":
            _, when, ident, accuracy, cost, latency, reward = item
            return _line(
                {
                    "schema": SCHEMA_VERSION,
                    "type": "feedback",
                    "router": self.router_id,
                    "time": when,
                    "id": ident,
                    "accuracy": accuracy,
                    "cost": cost,
                    "latency": latency,
                    "reward": reward,
                }
            )
        _, when, decision, probabilities, exclude, allowed, prompt = item
        record = {
            "schema": SCHEMA_VERSION,
            "type": "decision",
            "router": self.router_id,
            "time": when,
            "id": decision.id,
            "context": decision.context,
            "model": decision.model,
            "probability": decision.probability,
            "probabilities": probabilities,
            "allowed": [
                m
                for m in self._models
                if (allowed is None or m in allowed) and (exclude is None or m not in exclude)
            ],
        }
        if prompt is not None:
            record["prompt"] = prompt
        return _line(record)


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"
