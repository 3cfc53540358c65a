"""Delayed feedback: decisions wait here for their accuracy, and are settled exactly once.

A routed request's cost and latency are known when its answer ends; its accuracy often comes
later, from the application or a person, through ``POST /v1/feedback``. Each decision is in one
of these states, and every path out of "in flight" or "waiting" settles it once:

* **in flight**: the answer is still streaming. Feedback that arrives now is kept and applied
  when the answer ends.
* **waiting**: the answer ended; the decision waits for its accuracy until its deadline
  (``feedback_timeout`` later), when the router's ``default_accuracy`` is applied instead.
* **settled**: by feedback, by the deadline ("expired"), or without learning because the call
  failed or the client left ("cancelled"). Later feedback for it gets a clear 4xx.

Decision ids are random (:func:`new_decision_id`: 128 bits from :mod:`secrets`, so one cannot
be guessed from another), checked against :data:`DECISION_ID` before anything else is done with
them, and each decision remembers the principal (API key) that made it: feedback from any other
key is answered as for an unknown decision, so a client learns nothing of others' decisions.

The store is used from one event loop (the gateway's worker) and needs no lock.
"""

from __future__ import annotations

import heapq
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pickllm._core import Decision
from pickllm.gateway.errors import (
    DecisionCancelledError,
    DecisionExpiredError,
    DecisionSettledError,
    UnknownDecisionError,
)

__all__ = ["DECISION_ID", "FeedbackStore", "Outcome", "Pending", "new_decision_id"]

#: A decision id: "dec-", the deciding worker's token (12 hex digits), "-", 22 random characters.
DECISION_ID = re.compile(r"\Adec-([0-9a-f]{12})-([A-Za-z0-9_-]{22})\Z")
#: A worker's token: names it in decision ids and in the hand-off between workers.
WORKER_TOKEN = re.compile(r"\A[0-9a-f]{12}\Z")


def new_decision_id(worker: str) -> str:
    """A fresh, unguessable decision id of the worker with token ``worker``."""
    return f"dec-{worker}-{secrets.token_urlsafe(16)}"


#: How a settled decision was settled.
Outcome = Literal["feedback", "expired", "cancelled"]


@dataclass
class Pending:
    """One decision that has not been settled yet."""

    router: str
    decision: Decision
    #: Who made the decision (see pickllm.gateway.auth): the only one who may settle it.
    owner: str = "anonymous"
    #: Set when the answer ends.
    cost: float | None = None
    latency: float | None = None
    #: Given by ``POST /v1/feedback`` while the answer was still in flight.
    accuracy: float | None = None
    deadline: float = float("inf")
    default_accuracy: float = 0.0
    #: The question and the answer, kept only for routers with a judge.
    prompt: str | None = None
    answer: str | None = None
    #: Its gateway id (``x-pickllm-decision``).
    gid: str = ""


#: Applies a settled decision: (pending, accuracy or None when cancelled, outcome).
Settle = Callable[[Pending, float | None, Outcome], None]


class FeedbackStore:
    """Pending decisions by gateway id, their deadlines, and how recent ones were settled.

    >>> from pickllm import Decision
    >>> applied = []
    >>> store = FeedbackStore(lambda p, a, how: applied.append((p.decision.id, a, how)),
    ...                       clock=lambda: 0.0)
    >>> store.open("d1", "auto", Decision(1, "small", 0.5, "default"), owner="key-0")
    >>> store.answered("d1", cost=0.001, latency=0.2, timeout=60.0, default_accuracy=0.5)
    >>> store.feedback("d1", 0.9, by="key-1")
    Traceback (most recent call last):
    ...
    pickllm.gateway.errors.UnknownDecisionError: unknown decision 'd1'
    >>> store.feedback("d1", 0.9, by="key-0")
    >>> applied
    [(1, 0.9, 'feedback')]
    >>> store.feedback("d1", 0.9, by="key-0")
    Traceback (most recent call last):
    ...
    pickllm.gateway.errors.DecisionSettledError: decision 'd1' already received its feedback
    """

    def __init__(
        self,
        settle: Settle,
        *,
        clock: Callable[[], float] = time.monotonic,
        remember: int = 100_000,
    ) -> None:
        self._settle = settle
        self._clock = clock
        self._remember = remember
        self._pending: dict[str, Pending] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._settled: OrderedDict[str, Outcome] = OrderedDict()
        #: Owners of recently settled decisions (so their state is told only to them).
        self._owners: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def count(self, router: str) -> int:
        """Pending decisions of ``router``."""
        return sum(1 for p in self._pending.values() if p.router == router)

    def get(self, gid: str) -> Pending | None:
        """The pending decision ``gid``, or None once settled (or never issued)."""
        return self._pending.get(gid)

    def open(self, gid: str, router: str, decision: Decision, *, owner: str = "anonymous") -> None:
        """A decision's request, made by ``owner``, is sent upstream."""
        self._pending[gid] = Pending(router, decision, owner, gid=gid)

    def answered(
        self, gid: str, *, cost: float, latency: float, timeout: float, default_accuracy: float
    ) -> None:
        """The answer ended: settle now if feedback already came, else wait until the deadline."""
        pending = self._pending[gid]
        pending.cost, pending.latency = cost, latency
        if pending.accuracy is not None:
            self._finish(gid, pending.accuracy, "feedback")
            return
        pending.deadline = self._clock() + timeout
        pending.default_accuracy = default_accuracy
        heapq.heappush(self._deadlines, (pending.deadline, gid))

    def cancel(self, gid: str) -> None:
        """The call failed or the client left: settle without an accuracy."""
        if gid in self._pending:
            self._finish(gid, None, "cancelled")

    def feedback(
        self, gid: str, accuracy: float, *, by: str = "anonymous", admin: bool = False
    ) -> None:
        """Apply ``accuracy`` (checked in [0, 1] by the caller) to decision ``gid``, sent by
        principal ``by``: only its owner, or an ``admin``, may settle a decision."""
        pending = self._pending.get(gid)
        if pending is not None and not admin and pending.owner != by:
            raise UnknownDecisionError(f"unknown decision {gid!r}")
        if pending is None:
            owner = self._owners.get(gid)
            if owner is not None and not admin and owner != by:
                raise UnknownDecisionError(f"unknown decision {gid!r}")
            raise self._why_not(gid)
        if pending.accuracy is not None:
            raise DecisionSettledError(f"decision {gid!r} already received its feedback")
        if pending.cost is None:
            pending.accuracy = accuracy  # applied when the answer ends
            return
        self._finish(gid, accuracy, "feedback")

    def expire(self) -> int:
        """Settle every waiting decision past its deadline with its default accuracy; returns
        how many (:meth:`next_deadline` says when the next one is due)."""
        due = self.due()
        for gid, pending in due:
            self._finish(gid, pending.default_accuracy, "expired")
        return len(due)

    def due(self) -> list[tuple[str, Pending]]:
        """Waiting decisions past their deadline, each returned once and still pending: settle
        them with :meth:`expire_with` (feedback that comes first wins)."""
        now = self._clock()
        out = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, gid = heapq.heappop(self._deadlines)
            pending = self._pending.get(gid)
            if pending is not None:  # else settled by feedback in the meantime
                out.append((gid, pending))
        return out

    def expire_with(self, gid: str, accuracy: float) -> None:
        """Settle a due decision with ``accuracy`` (a judge's grade), unless settled already."""
        if gid in self._pending:
            self._finish(gid, accuracy, "expired")

    def next_deadline(self) -> float | None:
        return self._deadlines[0][0] if self._deadlines else None

    def settle_all(self) -> None:
        """At shutdown: waiting decisions get their default accuracy, in-flight ones none."""
        for gid, pending in list(self._pending.items()):
            if pending.cost is None:
                self._finish(gid, None, "cancelled")
            else:
                self._finish(gid, pending.default_accuracy, "expired")

    def _finish(self, gid: str, accuracy: float | None, outcome: Outcome) -> None:
        pending = self._pending.pop(gid)
        self._settled[gid] = outcome
        self._owners[gid] = pending.owner
        if len(self._settled) > self._remember:
            forgotten, _ = self._settled.popitem(last=False)
            self._owners.pop(forgotten, None)
        self._settle(pending, accuracy, outcome)

    def _why_not(self, gid: str) -> Exception:
        outcome = self._settled.get(gid)
        if outcome == "feedback":
            return DecisionSettledError(f"decision {gid!r} already received its feedback")
        if outcome == "expired":
            return DecisionExpiredError(
                f"decision {gid!r} expired: no feedback came within the router's "
                "feedback_timeout, so its default_accuracy was applied"
            )
        if outcome == "cancelled":
            return DecisionCancelledError(
                f"decision {gid!r} was cancelled (its call failed or its client left): "
                "there is no answer to grade"
            )
        return UnknownDecisionError(f"unknown decision {gid!r}")
