"""Bounds of one call: an overall deadline and a cap on the bytes read.

httpx's timeouts bound each network operation, not a call: a server that sends one byte a second
never trips a read timeout. A call given ``deadline`` (an absolute ``time.monotonic()``) is bounded
as a whole:

- every httpx phase timeout (connect, write, pool, read) is cut to the time left when the request
  starts, and the time is checked again at every chunk of the body;
- async calls are cancelled at the deadline (on our own pools under asyncio by aiohttp's total
  timer, which every aiohttp request pays for anyway; else by asyncio's timeout, or anyio's
  scope under trio), so their phases keep only the timeouts shorter than the time left;
- sync calls register with one shared :class:`Watchdog` thread, which at the deadline shuts the
  call's socket down, waking a read blocked in it (the socket comes from httpcore's trace of a new
  connection, or from the response of a reused one).

``max_response_bytes`` caps the decoded bytes read from a body or a stream, counted while reading,
so a call never holds more than the cap plus one network chunk.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from pickllm.backends.errors import InvalidRequestError

__all__ = ["WATCHDOG", "CallLimits", "LimitExceededError", "Watchdog"]


class LimitExceededError(Exception):
    """Internal: the call's deadline passed or its body outgrew the cap (``what`` says which)."""

    def __init__(self, what: str, message: str) -> None:
        super().__init__(message)
        self.what = what


#: Orders a sync call's socket becoming known against its expiry (held for two assignments,
#: so one lock serves every call; one per call would cost each async call a lock for nothing).
_STREAM_LOCK = threading.Lock()


@dataclass(slots=True)
class CallLimits:
    """The deadline and the byte cap of one call, and what it has read so far."""

    deadline: float | None
    max_bytes: int | None
    received: int = 0
    #: Set by the watchdog when it ended the call at its deadline.
    expired: bool = False
    #: Whether the request has left the local pool's queue (httpcore traced a connection step).
    acquired: bool = False
    #: The network stream of the call's connection, once known (sync calls only).
    stream: Any = None

    @classmethod
    def checked(cls, deadline: float | None, max_bytes: int | None) -> CallLimits:
        if deadline is not None and (
            isinstance(deadline, bool)
            or not isinstance(deadline, int | float)
            or math.isnan(deadline)
        ):
            raise InvalidRequestError(
                f"deadline must be a time.monotonic() value or None, got {deadline!r}"
            )
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1
        ):
            raise InvalidRequestError(
                f"max_response_bytes must be a positive integer or None, got {max_bytes!r}"
            )
        return cls(deadline=None if deadline is None else float(deadline), max_bytes=max_bytes)

    def remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def passed(self) -> bool:
        return self.expired or (self.deadline is not None and time.monotonic() >= self.deadline)

    def timeout(self, configured: httpx.Timeout) -> httpx.Timeout:
        """``configured`` with every phase cut to the time left (raises if none is left)."""
        if self.deadline is None:
            return configured
        return httpx.Timeout(**self.phases(configured.as_dict(), scoped=False))

    def phases(
        self, configured: Mapping[str, float | None], *, scoped: bool = True
    ) -> Mapping[str, float | None]:
        """httpx's phase timeouts (``Timeout.as_dict()``) cut to the time left (raises if none
        is left).

        ``scoped``: the call is cancelled at the deadline anyway (async calls), so a phase that
        could only time out at or after the deadline gets no timeout at all: its timer would
        cost CPU for nothing (aiohttp re-arms the read timer at every chunk received).
        """
        left = self.remaining()
        if left is None:
            return configured
        if left <= 0:
            raise LimitExceededError("deadline", "the deadline passed before the request was sent")
        cut = None if scoped else left
        return {
            phase: cut if value is None or value >= left else value
            for phase, value in configured.items()
        }

    def count(self, chunk: bytes) -> None:
        """Account for one chunk read; raise once over the cap or past the deadline."""
        self.received += len(chunk)
        if self.max_bytes is not None and self.received > self.max_bytes:
            raise LimitExceededError(
                "size", f"the response passed max_response_bytes={self.max_bytes}; reading stopped"
            )
        if self.passed():
            raise LimitExceededError("deadline", "the deadline passed while the answer arrived")

    # ---------------------------------------------------------------- tracing, sync expiry

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: every event is a step on a connection, so the request has
        left our pool's queue; remember the socket of a connection opened for this call."""
        self.acquired = True
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.attach(info.get("return_value"))

    async def atrace(self, event: str, info: dict[str, Any]) -> None:
        """The trace hook of async calls (httpcore awaits it)."""
        self.acquired = True

    def attach(self, stream: Any) -> None:
        if stream is None:
            return
        with _STREAM_LOCK:
            self.stream = stream
            expired = self.expired
        if expired:
            _shut_down(stream)

    def expire(self) -> None:
        """Called by the watchdog at the deadline: wake the call by shutting its socket down."""
        with _STREAM_LOCK:
            self.expired = True
            stream = self.stream
        if stream is not None:
            _shut_down(stream)


def _shut_down(stream: Any) -> None:
    sock = stream.get_extra_info("socket")
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed: the call is over anyway
            sock.shutdown(socket.SHUT_RDWR)


class Watchdog:
    """One daemon thread that expires sync calls at their deadlines: a heap of deadlines whose
    entries are disarmed in place, so arming and disarming cost a lock and a heap push (a
    disarmed entry, a few dozen bytes, leaves the heap when its deadline comes)."""

    def __init__(self) -> None:
        self._reset()
        # A forked child has none of the parent's threads: it starts its own on first use.
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[list[Any]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, limits: CallLimits) -> list[Any] | None:
        if limits.deadline is None:
            return None
        entry: list[Any] = [limits.deadline, next(self._order), limits]
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pickllm-watchdog", daemon=True
                )
                self._thread.start()
            if self._heap[0] is entry:
                self._cond.notify()
        return entry

    def disarm(self, entry: list[Any] | None) -> None:
        """After this returns the call is never expired: disarm before the connection can go
        back to the pool, where shutting it down would break another call."""
        if entry is not None:
            with self._cond:
                entry[2] = None

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                # Under the lock, so that a call disarmed before this point is never expired.
                heapq.heappop(self._heap)[2].expire()


#: The process's watchdog (its thread starts with the first sync call that has a deadline).
WATCHDOG = Watchdog()
