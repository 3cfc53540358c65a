"""How the threads that talk to Redis report trouble: every error counted, the last one kept for
``shared_status()``, logged at most once per ``LOG_EVERY`` seconds (with how many were not
logged), and retried after a pause that doubles up to ``MAX_BACKOFF``.

Nothing here ends a thread: only ``close()`` does (see :mod:`pickllm.state.replica`).
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["Backoff", "Health"]

logger = logging.getLogger("pickllm.state")

#: The shortest interval between two log lines about errors of one replica (seconds).
LOG_EVERY = 10.0
#: The most of one error's text kept and logged.
MESSAGE_CHARS = 300
#: The longest pause between two attempts after repeated errors (seconds).
MAX_BACKOFF = 5.0


class Backoff:
    """Pauses that double from ``first`` up to ``MAX_BACKOFF``; ``reset`` after a success."""

    def __init__(self, first: float) -> None:
        self.first = first
        self._next = first

    def next(self) -> float:
        pause = self._next
        self._next = min(MAX_BACKOFF, self._next * 2)
        return pause

    def reset(self) -> None:
        self._next = self.first


class Health:
    """Errors of one replica's threads (thread-safe). ``secret`` (a password) is cut out of
    every message kept or logged."""

    def __init__(self, name: str, secret: str | None) -> None:
        self.name = name
        self._secret = secret
        self._lock = threading.Lock()
        self.errors = 0
        self.last_error: str | None = None
        self._logged_at = -LOG_EVERY
        self._unlogged = 0

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    def failed(self, where: str, error: BaseException) -> None:
        """Count ``error`` (met while ``where``), keep it as the last, log it unless one was
        logged less than ``LOG_EVERY`` seconds ago."""
        text = str(error)
        if len(text) > MESSAGE_CHARS:  # a failed pipeline quotes its commands, events included
            text = text[: MESSAGE_CHARS - 3] + "..."
        message = self.redact(f"{where}: {type(error).__name__}: {text}")
        now = time.monotonic()
        with self._lock:
            self.errors += 1
            self.last_error = message
            if now - self._logged_at < LOG_EVERY:
                self._unlogged += 1
                return
            unlogged, self._unlogged, self._logged_at = self._unlogged, 0, now
        more = f" ({unlogged} more error(s) since the last report)" if unlogged else ""
        logger.warning("pickllm shared state %r: %s; retrying%s", self.name, message, more)
