"""The attempts of one routed query: which model each calls, and each call's bookkeeping.

:class:`pickllm.routing.RouteLoop` (``route()``, ``aroute()``) and the gateway make their calls
differently but choose and settle them here, the same way. The learner's own choice comes first,
then for each fallback the remaining model the learner ranks highest (selected with
``allowed=[it]``, so that the decision is recorded and its feedback counted like any other);
models already tried, with an open circuit (:class:`Health`), or whose worst-case cost does not
fit the budget are left out, and the chosen one's worst-case cost is reserved while it runs. No
attempt starts after ``max_attempts`` of them or past the deadline. Each call is a
:class:`Ticket`, settled exactly once whatever raises or cancels: answered, failed (fed back as
zero accuracy with its real latency) or abandoned (no verdict on the model, nothing fed back).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from pickllm._core import Decision
from pickllm.budget import BudgetExceeded, Reservation, Spending
from pickllm.errors import PickLLMError
from pickllm.health import Health

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pickllm.state.budget import SharedSpending

__all__ = [
    "AllModelsFailedError",
    "Attempt",
    "Attempts",
    "DeadlinePassedError",
    "Selector",
    "Ticket",
]

logger = logging.getLogger("pickllm")

#: What a caller bounds a call's cost from (its prompt, in whatever form it holds it).
P = TypeVar("P")


@dataclass(frozen=True)
class Attempt:
    """One call made for a query: its decision, and the error when it failed."""

    decision: Decision
    error: str | None = None

    @property
    def model(self) -> str:
        return self.decision.model


class AllModelsFailedError(PickLLMError):
    """Every attempt of one routed query failed; ``attempts`` lists each, in order."""

    def __init__(self, message: str, attempts: Sequence[Attempt]) -> None:
        lines = [f"  {i}. {a.model}: {a.error}" for i, a in enumerate(attempts, 1)]
        super().__init__("\n".join([message, *lines]))
        self.message = message
        self.attempts = tuple(attempts)

    def __reduce__(self) -> tuple[type[AllModelsFailedError], tuple[str, tuple[Attempt, ...]]]:
        # Exceptions pickle as cls(*args), which would lose `attempts`.
        return (type(self), (self.message, self.attempts))


class DeadlinePassedError(AllModelsFailedError):
    """The query's deadline passed before another attempt could start."""


class Selector(Protocol):
    """What attempts need of a router: the pool, selection, feedback and ranking."""

    @property
    def models(self) -> tuple[str, ...]: ...

    @property
    def default_context(self) -> str: ...

    def select(
        self,
        context: str | None = None,
        *,
        exclude: Iterable[str] | None = None,
        allowed: Iterable[str] | None = None,
    ) -> Decision: ...

    def feedback(
        self, decision: Decision, *, accuracy: float, cost: float = 0.0, latency: float = 0.0
    ) -> float: ...

    def probabilities(self, context: str | None = None) -> dict[str, float]: ...


@dataclass(slots=True)
class Ticket:
    """One call in flight: its decision, reservation and breaker slot, settled exactly once."""

    decision: Decision
    reservation: Reservation | None
    settled: bool = False


@dataclass(slots=True)
class Attempts(Generic[P]):
    """How one router chooses and settles its calls (see the module docs)."""

    selector: Selector
    health: Health
    spending: Spending | SharedSpending | None
    max_attempts: int
    #: The most one call of a model with a prompt can cost (used only with ``spending``).
    bound: Callable[[str, P], float]
    #: What errors call the deadline.
    deadline_name: str = "deadline"
    #: The clock of the deadlines given to :meth:`next`.
    clock: Callable[[], float] = time.monotonic

    def next(
        self, context: str | None, prompt: P, tried: Sequence[Attempt], deadline: float | None
    ) -> Ticket:
        """The next call of a query that made the calls ``tried``, its cost reserved."""
        self._check_deadline(tried, deadline)
        if self.spending is None:
            return Ticket(self._choose(context, prompt, tried, math.inf), None)
        while True:
            with self.spending.transaction():  # what fits, select, reserve: one atomic step
                left = self.spending.remaining(self._budget_context(context))
                decision = self._choose(context, prompt, tried, left)
                try:
                    amount = self.bound(decision.model, prompt)
                    reservation = self.spending.reserve(decision.context, amount)
                except BaseException:  # a shared budget out of reach: nothing is called
                    self.health.released(decision.model)
                    raise
            if reservation is not None:
                return Ticket(decision, reservation)
            # Only with a budget shared across replicas: another one took the money between
            # "what fits" and "reserve". Close the decision unjudged and choose again.
            self.health.released(decision.model)

    async def anext(
        self, context: str | None, prompt: P, tried: Sequence[Attempt], deadline: float | None
    ) -> Ticket:
        """:meth:`next` for an event loop: a budget shared through Redis is asked without
        blocking the loop (one in memory never waits: :meth:`next` as it is)."""
        spending = self.spending
        if spending is None or isinstance(spending, Spending):
            return self.next(context, prompt, tried, deadline)
        self._check_deadline(tried, deadline)
        while True:  # as `next`, without its lock: across replicas the reservation is atomic
            left = await spending.aremaining(self._budget_context(context))
            decision = self._choose(context, prompt, tried, left)
            try:
                reservation = await spending.areserve(
                    decision.context, self.bound(decision.model, prompt)
                )
            except BaseException:  # out of reach, or cancelled: nothing is called
                self.health.released(decision.model)
                raise
            if reservation is not None:
                return Ticket(decision, reservation)
            self.health.released(decision.model)

    def _check_deadline(self, tried: Sequence[Attempt], deadline: float | None) -> None:
        if deadline is not None and tried and self.clock() >= deadline:
            raise DeadlinePassedError(
                f"the {self.deadline_name} passed after {len(tried)} attempt(s)", tried
            )

    def _budget_context(self, context: str | None) -> str:
        return self.selector.default_context if context is None else context

    def _choose(
        self, context: str | None, prompt: P, tried: Sequence[Attempt], left: float
    ) -> Decision:
        """Select among the models that may be tried and whose worst-case cost fits ``left``
        (USD; inf without a budget)."""
        blocked = self.health.blocked()
        if not tried and not blocked and self.spending is None:  # the usual call: any model
            decision = self.selector.select(context)
            self.health.started(decision.model)
            return decision
        unaffordable = self._unaffordable(prompt, left)
        excluded = {a.model for a in tried} | set(blocked) | set(unaffordable)
        remaining = [m for m in self.selector.models if m not in excluded]
        if not remaining or len(tried) >= self.max_attempts:
            reasons = {**unaffordable, **blocked}
            why = "; ".join(f"{m}: {r}" for m, r in reasons.items())
            message = (
                f"no model answered in {len(tried)} attempt(s) (max_attempts="
                f"{self.max_attempts})" + (f"; unavailable: {why}" if why else "")
            )
            if unaffordable and not remaining and len(tried) < self.max_attempts:
                raise BudgetExceeded(message)
            raise AllModelsFailedError(message, tried)
        if not tried:
            decision = self.selector.select(context, exclude=sorted(excluded) or None)
        else:
            ranking = self.selector.probabilities(context)
            best = max(remaining, key=ranking.__getitem__)
            decision = self.selector.select(context, allowed=[best])
        self.health.started(decision.model)
        return decision

    def _unaffordable(self, prompt: P, left: float) -> dict[str, str]:
        if self.spending is None:
            return {}
        bounds = {m: self.bound(m, prompt) for m in self.selector.models}
        return {
            m: f"worst-case cost {b:.6f} USD exceeds the {left:.6f} USD left"
            for m, b in bounds.items()
            if b > left
        }

    def _settle(self, ticket: Ticket, cost: float) -> bool:
        """Replace the ticket's reservation by ``cost``; False if it was settled already."""
        if ticket.settled:
            return False
        ticket.settled = True
        if ticket.reservation is not None and self.spending is not None:
            self.spending.settle(ticket.reservation, cost)
        return True

    def session(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Hold a shared budget's connections on the running event loop while it is open."""
        return contextlib.nullcontext() if self.spending is None else self.spending.session()

    async def flush(self) -> None:
        """Send the settlements a shared budget queued on the event loop (see
        :meth:`pickllm.state.budget.SharedSpending.flush`); never raises for Redis."""
        if self.spending is not None:
            await self.spending.flush()

    def answered(self, ticket: Ticket, cost: float) -> None:
        """The model answered: charge what it reports (see docs/reliability.md on providers
        that report more than the bound reserved), and count the success."""
        if not self._settle(ticket, cost):
            return
        self.health.succeeded(ticket.decision.model)
        # Compared as floats: a float against a Fraction takes microseconds, on every answer.
        reserved = None if ticket.reservation is None else float(ticket.reservation.amount)
        if reserved is not None and cost > reserved:
            logger.warning(
                "pickllm: %s reported usage costing %.6f USD, above the %.6f USD bound reserved",
                ticket.decision.model,
                cost,
                reserved,
            )

    def failed(
        self,
        ticket: Ticket,
        error: object,
        latency: float,
        *,
        retry_after: float | None = None,
        cost: float = 0.0,
    ) -> float | None:
        """The model failed the call (``error``, after ``latency`` seconds): counted for the
        breaker, held out for ``retry_after`` seconds when given, and fed back as zero accuracy
        with its real latency; returns the reward applied (None if settled already)."""
        decision = ticket.decision
        if not self._settle(ticket, cost):
            return None
        self.health.failed(decision.model)
        if retry_after:
            self.health.hold(decision.model, retry_after)
        logger.warning("pickllm: %s failed: %s", decision.model, error)
        # Last: should the core refuse it (the decision expired under load), nothing else is
        # left unsettled.
        latency = latency if math.isfinite(latency) and latency >= 0 else 0.0
        return self.selector.feedback(decision, accuracy=0.0, cost=cost, latency=latency)

    def abandon(self, ticket: Ticket, cost: float = 0.0) -> None:
        """A call ended by something other than a verdict on the model (a cancellation, our own
        congestion, a bug): release its reservation (charging ``cost``, what it used) and its
        breaker slot, feed nothing back. The decision stays unanswered, to expire after
        ``max_pending`` newer ones. Does nothing once the ticket is settled."""
        if self._settle(ticket, cost):
            self.health.released(ticket.decision.model)
