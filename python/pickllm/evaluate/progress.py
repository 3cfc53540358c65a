"""The progress bar of ``pickllm evaluate``: how far it read the log and how long is left.

Drawn on standard error only when it is a terminal (a pipe or a CI log gets no control
characters), at most ten times a second. ``evaluate`` reads the log ``passes`` times; each pass
reports ``(bytes read, bytes in all)`` from zero, and the bar shows the whole run's share with
an estimate of the time left, from the rate so far.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]

_WIDTH = 30


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressBar:
    """``ProgressBar(passes)(done, total)`` per progress report; :meth:`close` at the end."""

    def __init__(self, passes: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.passes = passes
        self._pass = 0
        self._last_done = 0
        self._started = time.monotonic()
        self._drawn = -1.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if done < self._last_done:  # a new pass starts from zero
            self._pass = min(self._pass + 1, self.passes - 1)
        self._last_done = done
        now = time.monotonic()
        if now - self._drawn < 0.1 and done < total:
            return
        self._drawn = now
        share = (self._pass + (done / total if total else 1.0)) / self.passes
        elapsed = now - self._started
        left = elapsed / share * (1 - share) if share > 0 else 0.0
        filled = round(share * _WIDTH)
        self.stream.write(
            f"\revaluate: [{'#' * filled}{'.' * (_WIDTH - filled)}] {share:4.0%} "
            f"pass {self._pass + 1}/{self.passes}, {_duration(left)} left  "
        )
        self.stream.flush()

    def close(self) -> None:
        """Ends the bar's line (the summary and the table follow)."""
        if self.enabled and self._drawn >= 0:
            self.stream.write(
                f"\revaluate: done in {_duration(time.monotonic() - self._started)}"
                + " " * 40
                + "\n"
            )
            self.stream.flush()
