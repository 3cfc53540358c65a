"""The decision explorer's memory: the gateway's most recent routed requests, for
``GET /v1/decisions`` and the dashboard.

One record per routed request: its router and context, when it was decided, each model's
probability in its context at that moment, and its attempts (a failed call falls back to another
model: one attempt each), each with its model, the probability it was drawn with, its outcome,
latency and cost, and, once settled, how (feedback, expired, cancelled), its accuracy and the
reward the learner got. Every attempt's decision id (``x-pickllm-decision``) finds its record.

Nothing a client sent or an upstream answered is kept: no prompt, no completion, no key. Each
record remembers the principal that made it, never shown: a client sees only its own decisions;
admin keys (and every caller when the gateway has no keys) see all of them.

Memory is bounded: at most :data:`KEPT` records per worker, the oldest forgotten first (each
holds a few numbers per model and per attempt: 0.8 KB for one attempt over three models, 8.1 MB
at the bound, measured with tracemalloc).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pickllm.gateway.auth import ADMIN, ANONYMOUS

__all__ = ["DECISIONS_VERSION", "KEPT", "MAX_LIMIT", "DecisionRecords"]

#: The version of ``GET /v1/decisions``'s JSON (fields are only ever added within a version).
DECISIONS_VERSION: Final = 1
#: Records kept per worker.
KEPT: Final = 10_000
#: The most records one ``GET /v1/decisions`` returns.
MAX_LIMIT: Final = 500

#: What became of one attempt's call: answered, failed (the model's fault: a fallback follows),
#: refused (the request's own fault, or the gateway's: no model judged) or abandoned (the client
#: left); in flight until then.
AttemptOutcome = Literal["in_flight", "answered", "failed", "refused", "abandoned"]


@dataclass
class _Attempt:
    gid: str
    model: str
    probability: float
    outcome: AttemptOutcome = "in_flight"
    error: str | None = None
    latency: float | None = None
    cost: float | None = None
    settled: str | None = None
    accuracy: float | None = None
    reward: float | None = None

    def json(self) -> dict[str, Any]:
        return {
            "id": self.gid,
            "model": self.model,
            "probability": self.probability,
            "outcome": self.outcome,
            "error": self.error,
            "latency": self.latency,
            "cost": self.cost,
            "settled": self.settled,
            "accuracy": self.accuracy,
            "reward": self.reward,
        }


@dataclass
class _Record:
    router: str
    context: str
    time: float
    owner: str
    probabilities: dict[str, float]
    attempts: list[_Attempt] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        last = self.attempts[-1]
        if last.settled is not None:
            status = "settled"
        elif last.outcome == "in_flight":
            status = "in_flight"
        else:
            status = "waiting"  # answered, its feedback not in yet
        return {
            "id": last.gid,
            "router": self.router,
            "context": self.context,
            "time": self.time,
            "status": status,
            "model": last.model if last.outcome == "answered" else None,
            "probabilities": self.probabilities,
            "attempts": [a.json() for a in self.attempts],
        }


class DecisionRecords:
    """The last :data:`KEPT` routed requests of this worker, by any of their decision ids.

    >>> records = DecisionRecords(clock=lambda: 1.0)
    >>> records.attempt("dec-1", "auto", "legal", "small", 0.6, owner="key-0",
    ...                 probabilities={"small": 0.6, "large": 0.4})
    >>> records.failed("dec-1", "http_5xx", latency=0.2)
    >>> records.rewarded("dec-1", 0.1)
    >>> records.attempt("dec-2", "auto", "legal", "large", 1.0, owner="key-0", previous="dec-1")
    >>> records.answered("dec-2", latency=1.5, cost=0.002)
    >>> records.settled("dec-2", "feedback", accuracy=1.0)
    >>> records.rewarded("dec-2", 0.9)
    >>> found = records.get("dec-1", "key-0")
    >>> found["id"], found["status"], found["model"]
    ('dec-2', 'settled', 'large')
    >>> [(a["model"], a["outcome"], a["reward"]) for a in found["attempts"]]
    [('small', 'failed', 0.1), ('large', 'answered', 0.9)]
    >>> records.get("dec-1", "key-1") is None  # another key's decision
    True
    """

    def __init__(self, kept: int = KEPT, clock: Callable[[], float] = time.time) -> None:
        self._kept = kept
        self._clock = clock
        #: Records by the id of their first attempt, oldest first.
        self._records: OrderedDict[str, _Record] = OrderedDict()
        #: Every attempt's id: its record's first id and the attempt.
        self._attempts: dict[str, tuple[str, _Attempt]] = {}

    def __len__(self) -> int:
        return len(self._records)

    def attempt(
        self,
        gid: str,
        router: str,
        context: str,
        model: str,
        probability: float,
        *,
        owner: str,
        probabilities: dict[str, float] | None = None,
        previous: str | None = None,
    ) -> None:
        """A new attempt ``gid``: the first of its request (with the context's
        ``probabilities``), or a fallback after the attempt ``previous``."""
        attempt = _Attempt(gid, model, probability)
        found = None if previous is None else self._attempts.get(previous)
        if found is not None:
            first = found[0]
            self._records[first].attempts.append(attempt)
            self._attempts[gid] = (first, attempt)
            return
        record = _Record(router, context, self._clock(), owner, probabilities or {}, [attempt])
        self._records[gid] = record
        self._attempts[gid] = (gid, attempt)
        while len(self._records) > self._kept:
            _, forgotten = self._records.popitem(last=False)
            for a in forgotten.attempts:
                self._attempts.pop(a.gid, None)

    def _find(self, gid: str) -> _Attempt | None:
        found = self._attempts.get(gid)
        return None if found is None else found[1]

    def answered(self, gid: str, *, latency: float, cost: float) -> None:
        attempt = self._find(gid)
        if attempt is not None:
            attempt.outcome, attempt.latency, attempt.cost = "answered", latency, cost

    def failed(
        self, gid: str, kind: str, *, latency: float, blames_model: bool = True, cost: float = 0.0
    ) -> None:
        attempt = self._find(gid)
        if attempt is not None:
            attempt.outcome = "failed" if blames_model else "refused"
            attempt.error, attempt.latency, attempt.cost = kind, latency, cost
            if blames_model:  # fed back to the learner as a wrong answer
                attempt.accuracy = 0.0

    def abandoned(self, gid: str, cost: float = 0.0) -> None:
        attempt = self._find(gid)
        if attempt is not None and attempt.outcome == "in_flight":
            attempt.outcome, attempt.cost = "abandoned", cost

    def settled(self, gid: str, how: str, accuracy: float | None) -> None:
        attempt = self._find(gid)
        if attempt is not None:
            attempt.settled = how
            if accuracy is not None:
                attempt.accuracy = accuracy

    def rewarded(self, gid: str, reward: float) -> None:
        attempt = self._find(gid)
        if attempt is not None:
            attempt.reward = reward

    # ==================== GET /v1/decisions ====================

    @staticmethod
    def _visible(record: _Record, principal: str) -> bool:
        return principal in (ADMIN, ANONYMOUS) or record.owner == principal

    def get(self, gid: str, principal: str) -> dict[str, Any] | None:
        """The request that attempt ``gid`` belongs to, if ``principal`` may see it."""
        found = self._attempts.get(gid)
        if found is None:
            return None
        record = self._records[found[0]]
        return record.json() if self._visible(record, principal) else None

    def recent(
        self,
        principal: str,
        *,
        router: str | None = None,
        context: str | None = None,
        limit: int = 20,
    ) -> list[dict[str, Any]]:
        """The ``limit`` most recent requests ``principal`` may see, newest first."""
        out: list[dict[str, Any]] = []
        for record in self._newest_first():
            if len(out) >= limit:
                break
            if (
                (router is None or record.router == router)
                and (context is None or record.context == context)
                and self._visible(record, principal)
            ):
                out.append(record.json())
        return out

    def _newest_first(self) -> Iterator[_Record]:
        return reversed(self._records.values())
