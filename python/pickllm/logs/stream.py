"""Decision logs read in passes from disk, with memory bounded independently of their length.

:func:`~pickllm.logs.read_log` holds every record in memory; :class:`LogStream` holds only
what one pass needs: the routers' header records, one bit per decision (was it answered?) and
the decisions in flight, logged but not yet answered at that point of the file. Each iteration
reads the files again and yields each answered decision joined with its feedback, in time order
(routers' streams merged by decision time; within one router, in the order it logged them),
as :func:`~pickllm.logs.read_log` does.

Opening a stream scans the log once: which decisions were answered, and the headers. That scan
is what lets an iteration skip decisions that will never be answered instead of holding them
to the end.

>>> import tempfile
>>> from pickllm import Router
>>> folder = tempfile.mkdtemp()
>>> with Router(["big", "small"], seed=1, decision_log=folder) as router:
...     for _ in range(3):
...         d = router.select(context="math")
...         _ = router.feedback(d, accuracy=1.0, cost=0.01, latency=0.5)
...     unanswered = router.select(context="math")
>>> stream = LogStream(folder)
>>> [r.accuracy for r in stream], stream.unanswered, stream.models
([1.0, 1.0, 1.0], 1, ('big', 'small'))
"""

from __future__ import annotations

import heapq
import json
import os
import re
from collections import Counter, deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pickllm.logs.schema import SCHEMA_VERSION
from pickllm.replay.errors import DataError

__all__ = ["LogStream", "Progress", "log_files", "parse_lines"]

#: Called as ``progress(done_bytes, total_bytes)`` while a pass reads the files.
Progress = Callable[[int, int], None]

_NAME = re.compile(r"decisions-(?P<router>.+)-\d+\.jsonl")
#: Lines between two progress calls.
_TICK = 4096


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """The log files of the folder (or the one file) ``path``, in name order."""
    root = Path(path)
    if root.is_dir():
        files = sorted(root.glob("decisions-*.jsonl"))
    elif root.is_file():
        files = [root]
    else:
        raise DataError(f"no decision log at {str(root)!r}")
    if not files:
        raise DataError(f"no decision log files (decisions-*.jsonl) in {str(root)!r}")
    return files


def parse_lines(
    file: Path, skipped: Counter[str], tick: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """The records of one file, read a line at a time. Lines that are not JSON objects of the
    schema are counted in ``skipped``; a newer schema or bytes that are not UTF-8 raise
    DataError. ``tick(n)`` is told of every ``n`` bytes read, a few thousand lines at a time."""
    read = 0
    with file.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            read += len(line)
            if tick is not None and number % _TICK == 0:
                tick(read)
                read = 0
            try:
                record = json.loads(line)
            except UnicodeDecodeError as error:
                raise DataError(f"not UTF-8 text ({error.reason})", path=str(file)) from None
            except json.JSONDecodeError:
                if line.strip():
                    skipped["invalid_json"] += 1
                continue
            if not isinstance(record, dict):
                skipped["not_an_object"] += 1
                continue
            schema = record.get("schema")
            if isinstance(schema, int) and schema > SCHEMA_VERSION:
                raise DataError(
                    f"schema {schema} is newer than this pickllm reads ({SCHEMA_VERSION}): upgrade",
                    path=str(file),
                    line=number,
                )
            if schema != SCHEMA_VERSION:
                skipped["no_schema"] += 1
                continue
            yield record
    if tick is not None:
        tick(read)


class _Bits:
    """A set of decision ids as one bit each (ids are a router's counter: dense)."""

    def __init__(self) -> None:
        self._base: int | None = None
        self._bits = bytearray()
        self._others: set[Any] = set()

    def add(self, ident: Any) -> None:
        if isinstance(ident, int) and not isinstance(ident, bool) and ident >= 0:
            if self._base is None:
                self._base = ident
            offset = ident - self._base
            if offset >= 0:
                if offset >> 3 >= len(self._bits):
                    self._bits.extend(bytes(max(len(self._bits), (offset >> 3) + 1)))
                self._bits[offset >> 3] |= 1 << (offset & 7)
                return
        self._others.add(ident)

    def __contains__(self, ident: Any) -> bool:
        if self._base is not None and isinstance(ident, int) and not isinstance(ident, bool):
            offset = ident - self._base
            if 0 <= offset < len(self._bits) * 8:
                return bool(self._bits[offset >> 3] & (1 << (offset & 7)))
        return ident in self._others


class LogStream:
    """A decision log folder (or one log file) read in passes; iterate it for the answered
    decisions (:class:`~pickllm.logs.DecisionRecord`) in time order, as often as needed.

    Raises DataError as :func:`~pickllm.logs.read_log` does. :attr:`unanswered` and
    :attr:`skipped` are complete after the first full iteration.
    """

    def __init__(self, path: str | os.PathLike[str], *, progress: Progress | None = None) -> None:
        self.path = Path(path)
        self.progress = progress
        files = log_files(path)
        self.files = len(files)
        self.bytes = sum(f.stat().st_size for f in files)
        # One stream per router (its files in order); a file of another name is its own.
        groups: dict[str, list[Path]] = {}
        for file in files:
            match = _NAME.fullmatch(file.name)
            groups.setdefault(match["router"] if match else str(file), []).append(file)
        self._groups = list(groups.values())
        #: Per router id, its header record (pool, policy, reward).
        self.routers: dict[str, dict[str, Any]] = {}
        self._answered: dict[str, _Bits] = {}
        #: Decisions that never received feedback (after the first iteration).
        self.unanswered = 0
        #: Lines and records skipped, by reason.
        self.skipped: Counter[str] = Counter()
        #: Decisions with feedback (after the first iteration).
        self.records = 0
        #: The most decisions one iteration held at once, waiting for their feedback (or for an
        #: earlier decision's): what its memory grows with, besides a bit per decision.
        self.in_flight = 0
        self._iterated = False
        self._scan()
        models: dict[str, None] = {}
        for header in self.routers.values():
            models.update(dict.fromkeys(header["models"]))
        #: The pool (the union over routers, in order of first appearance).
        self.models = tuple(models)

    def _ticker(self) -> Callable[[int], None] | None:
        if self.progress is None:
            return None
        progress, total, done = self.progress, self.bytes, [0]
        progress(0, total)  # a pass begins

        def tick(read: int) -> None:
            done[0] += read
            progress(done[0], total)

        return tick

    def _scan(self) -> None:
        tick = self._ticker()
        for files in self._groups:
            for file in files:
                for record in parse_lines(file, self.skipped, tick):
                    kind, router = record.get("type"), record.get("router")
                    if not isinstance(router, str):
                        self.skipped["no_router"] += 1
                    elif kind == "router":
                        self.routers.setdefault(router, record)
                    elif kind == "feedback":
                        self._answered.setdefault(router, _Bits()).add(record.get("id", -1))
                    elif kind != "decision":
                        self.skipped["unknown_type"] += 1

    def __iter__(self) -> Iterator[Any]:
        from pickllm.logs.reader import DecisionRecord

        first = not self._iterated
        counts: Counter[str] = Counter()
        tick = self._ticker()
        streams = [self._joined(files, counts, tick) for files in self._groups]
        merged: Iterator[DecisionRecord] = heapq.merge(
            *streams, key=lambda r: (r.time, r.router, r.id)
        )
        yield from merged
        if first:
            self._iterated = True
            self.records = counts.pop("records", 0)
            self.unanswered = counts.pop("unanswered", 0)
            self.skipped.update(counts)

    def _joined(
        self, files: list[Path], counts: Counter[str], tick: Callable[[int], None] | None
    ) -> Iterator[Any]:
        """One router's answered decisions, in the order it logged them: a decision waits in
        ``waiting`` until its feedback arrives, and leaves once every earlier one has."""
        nobody = _Bits()
        waiting: deque[tuple[str, Any]] = deque()
        decisions: dict[tuple[str, Any], dict[str, Any]] = {}
        outcomes: dict[tuple[str, Any], dict[str, Any]] = {}
        ignored: Counter[str] = Counter()  # line-level reasons: counted by the scan already
        for file in files:
            for record in parse_lines(file, ignored, tick):
                kind, router = record.get("type"), record.get("router")
                if not isinstance(router, str):
                    continue
                key = (router, record.get("id", -1))
                if kind == "decision":
                    if key[1] not in self._answered.get(router, nobody):
                        counts["unanswered"] += 1
                    elif router not in self.routers:
                        counts["no_router_record"] += 1
                    elif key not in decisions:
                        decisions[key] = record
                        waiting.append(key)
                        if len(waiting) > self.in_flight:
                            self.in_flight = len(waiting)
                elif kind == "feedback":
                    outcomes[key] = record
                    if key not in decisions:
                        # A duplicate, or the feedback of a decision the writer dropped (its
                        # queue was full): nothing waits for it, so it must not accumulate.
                        # (A router logs a decision before it can be answered.)
                        del outcomes[key]
                while waiting and waiting[0] in outcomes:
                    yield from self._release(waiting.popleft(), decisions, outcomes, counts)
        while waiting:  # a log cut short: what can still be joined, is
            yield from self._release(waiting.popleft(), decisions, outcomes, counts)

    def _release(
        self,
        key: tuple[str, Any],
        decisions: dict[tuple[str, Any], dict[str, Any]],
        outcomes: dict[tuple[str, Any], dict[str, Any]],
        counts: Counter[str],
    ) -> Iterator[Any]:
        from pickllm.logs.reader import join

        raw, outcome = decisions.pop(key), outcomes.pop(key, None)
        if outcome is None:
            counts["unanswered"] += 1
            return
        try:
            joined = join(raw, outcome, self.routers[key[0]])
        except (KeyError, TypeError, ValueError):
            counts["malformed_record"] += 1
            return
        counts["records"] += 1
        yield joined

    def summary(self) -> str:
        text = (
            f"{self.records} decisions with feedback from {len(self.routers)} router(s) "
            f"in {self.files} file(s); {self.unanswered} without feedback"
        )
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        return text
