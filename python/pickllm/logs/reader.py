"""Reading decision logs back: each decision joined with its feedback, in time order.

>>> import tempfile
>>> from pickllm import Router
>>> folder = tempfile.mkdtemp()
>>> with Router(["big", "small"], seed=1, decision_log=folder) as router:
...     for _ in range(3):
...         d = router.select(context="math")
...         _ = router.feedback(d, accuracy=1.0, cost=0.01, latency=0.5)
...     unanswered = router.select(context="math")
>>> log = read_log(folder)
>>> len(log.records), log.unanswered, log.models
(3, 1, ('big', 'small'))
"""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pickllm.logs.stream import log_files, parse_lines

__all__ = ["DecisionRecord", "LoadedLog", "read_log"]


@dataclass(frozen=True)
class DecisionRecord:
    """One logged decision and the outcome its feedback reported."""

    router: str
    id: int
    time: float
    context: str
    model: str
    #: The exact probability the logging policy chose ``model`` with.
    probability: float
    #: The logging policy's distribution over :attr:`models` at that moment.
    probabilities: tuple[float, ...]
    models: tuple[str, ...]
    allowed: tuple[str, ...]
    accuracy: float
    cost: float
    latency: float
    reward: float
    prompt: object = None

    def logging_probabilities(self) -> dict[str, float]:
        """The logging distribution over :attr:`allowed`: the chosen model's exact
        probability, the others renormalized from :attr:`probabilities` (uniform when the
        subset held no mass), as the automaton draws; exact when every model was allowed."""
        weights = dict(zip(self.models, self.probabilities, strict=True))
        total = sum(weights[m] for m in self.allowed)
        out = {
            m: (weights[m] / total if total > 0 else 1.0 / len(self.allowed)) for m in self.allowed
        }
        out[self.model] = self.probability
        return out


@dataclass(frozen=True)
class LoadedLog:
    """What :func:`read_log` found."""

    #: Decisions that received feedback, in time order.
    records: list[DecisionRecord]
    #: The pool (the union over routers, in order of first appearance).
    models: tuple[str, ...]
    #: Per router id, its header record (pool, policy, reward).
    routers: dict[str, dict[str, Any]]
    #: Decisions that never received feedback (expired, abandoned or still pending).
    unanswered: int
    #: Lines skipped, by reason.
    skipped: Counter[str] = field(default_factory=Counter)
    files: int = 0

    def summary(self) -> str:
        text = (
            f"{len(self.records)} decisions with feedback from {len(self.routers)} router(s) "
            f"in {self.files} file(s); {self.unanswered} without feedback"
        )
        if self.skipped:
            text += "; skipped " + ", ".join(f"{n} {why}" for why, n in self.skipped.items())
        return text


def read_log(path: str | os.PathLike[str]) -> LoadedLog:
    """Every decision of the log folder (or one log file) ``path`` joined with its feedback,
    held in memory (:class:`~pickllm.logs.LogStream` reads a log of any length in passes).

    Raises DataError when ``path`` holds no log, a record is of a newer schema, or a file is
    not UTF-8. Lines that are not JSON objects of the schema (a line cut short by a crash) are
    skipped and counted in :attr:`LoadedLog.skipped`.
    """
    files = log_files(path)
    headers: dict[str, dict[str, Any]] = {}
    decisions: dict[tuple[str, int], dict[str, Any]] = {}
    outcomes: dict[tuple[str, int], dict[str, Any]] = {}
    skipped: Counter[str] = Counter()
    for file in files:
        for record in parse_lines(file, skipped):
            kind = record.get("type")
            router = record.get("router")
            if not isinstance(router, str):
                skipped["no_router"] += 1
            elif kind == "router":
                headers.setdefault(router, record)
            elif kind == "decision":
                decisions[(router, record.get("id", -1))] = record
            elif kind == "feedback":
                outcomes[(router, record.get("id", -1))] = record
            else:
                skipped["unknown_type"] += 1
    records = []
    unanswered = 0
    for key, raw in decisions.items():
        outcome = outcomes.get(key)
        header = headers.get(key[0])
        if outcome is None:
            unanswered += 1
            continue
        if header is None:
            skipped["no_router_record"] += 1
            continue
        try:
            records.append(join(raw, outcome, header))
        except (KeyError, TypeError, ValueError):
            skipped["malformed_record"] += 1
    records.sort(key=lambda r: (r.time, r.router, r.id))
    models: dict[str, None] = {}
    for header in headers.values():
        models.update(dict.fromkeys(header["models"]))
    return LoadedLog(records, tuple(models), headers, unanswered, skipped, len(files))


def _number(record: dict[str, Any], name: str) -> float:
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(name)
    return float(value)


def join(raw: dict[str, Any], outcome: dict[str, Any], header: dict[str, Any]) -> DecisionRecord:
    """One decision record joined with its feedback and its router's header; raises
    KeyError, TypeError or ValueError when they are malformed or inconsistent."""
    models = tuple(str(m) for m in header["models"])
    probabilities = tuple(float(p) for p in raw["probabilities"])
    allowed = tuple(str(m) for m in raw["allowed"])
    model = str(raw["model"])
    probability = _number(raw, "probability")
    if (
        len(probabilities) != len(models)
        or model not in allowed
        or not set(allowed) <= set(models)
        or not 0 < probability <= 1
    ):
        raise ValueError("inconsistent decision")
    return DecisionRecord(
        router=str(raw["router"]),
        id=int(raw["id"]),
        time=_number(raw, "time"),
        context=str(raw["context"]),
        model=model,
        probability=probability,
        probabilities=probabilities,
        models=models,
        allowed=allowed,
        accuracy=_number(outcome, "accuracy"),
        cost=_number(outcome, "cost"),
        latency=_number(outcome, "latency"),
        reward=_number(outcome, "reward"),
        prompt=raw.get("prompt"),
    )
