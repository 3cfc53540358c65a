"""The whole PickLLM loop for routers whose models carry backends: pick, call, time, price,
score, learn.

One query: the learner picks a model (:meth:`Router.select`), its backend is called (latency and
token usage come from the call), the cost follows from the model's prices, the scorer grades the
answer, and :meth:`Router.feedback` applies the reward. A failed call (connection refused,
timeout, 429, 5xx, malformed body, broken stream) is fed back as a zero-accuracy observation with
its real latency, and the query goes to the remaining model the learner ranks highest, within
``max_attempts`` calls. A 429's Retry-After keeps that model out of every selection until it
has passed. If every attempt fails, one :class:`AllModelsFailedError` lists them all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from pickllm._core import Decision
from pickllm.backends.base import Completion, Message, validate_call
from pickllm.backends.errors import BackendError, RateLimitError
from pickllm.budget import BudgetExceeded, Reservation, Spending, cost_bound
from pickllm.errors import ArgumentTypeError, PickLLMError
from pickllm.health import Health
from pickllm.models import Model
from pickllm.scorers.base import ScorerAdapter
from pickllm.scorers.errors import ScorerError

if TYPE_CHECKING:
    from pickllm.router import Router
    from pickllm.state.budget import SharedSpending

__all__ = ["AllModelsFailedError", "Attempt", "Prompt", "RouteLoop", "RouteResult", "to_messages"]

logger = logging.getLogger("pickllm")

#: A prompt: plain text (one user message) or chat messages.
Prompt = str | Sequence[Message]


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


@dataclass(frozen=True)
class RouteResult:
    """What :meth:`Router.route` returns for one query."""

    text: str
    model: str
    decision: Decision
    #: USD, from the model's prices and the call's token usage.
    cost: float
    #: True when the server reported no token usage, so tokens and cost are estimates.
    cost_estimated: bool
    #: Seconds from sending the request to having the whole answer.
    latency: float
    time_to_first_token: float | None
    input_tokens: int
    output_tokens: int
    #: The scorer's grade; None without a scorer (or when it failed): the decision then awaits
    #: :meth:`Router.feedback`, for example from a person.
    accuracy: float | None
    #: The reward applied to the learner; None while no feedback was applied.
    reward: float | None
    completion: Completion
    #: Every call made for this query: failed ones first, the answering one last.
    attempts: tuple[Attempt, ...]


def to_messages(prompt: Prompt) -> list[Message]:
    """A prompt as chat messages (plain text becomes one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, bytes) or not isinstance(prompt, Sequence):
        raise ArgumentTypeError(
            f"prompt must be a str or a list of chat messages, got {type(prompt).__name__}"
        )
    return list(cast("Sequence[Message]", prompt))


def _prompt_text(messages: Sequence[Message]) -> str:
    """What a scorer grades the answer against: the last user message."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return str(messages[-1].get("content", "")) if messages else ""


class RouteLoop:
    """The route loop of one router: its models' specs, scorer, retry bound, health and budget.
    The sync and async paths share every step but the call and the grading."""

    def __init__(
        self,
        router: Router,
        specs: dict[str, Model],
        scorer: ScorerAdapter | None,
        *,
        max_attempts: int,
        temperature: float | None,
        stream: bool,
        health: Health,
        spending: Spending | SharedSpending | None,
    ) -> None:
        self.router = router
        self.specs = specs
        self.scorer = scorer
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.stream = stream
        self.health = health
        self.spending = spending

    # ==================== Sync and async entry points ====================

    def route(self, prompt: Prompt, context: str | None, reference: str | None) -> RouteResult:
        messages = self._messages(prompt)
        attempts: list[Attempt] = []
        while True:
            decision, reservation = self._next(context, messages, attempts)
            spec = self.specs[decision.model]
            try:
                completion = spec.complete(
                    messages, temperature=self.temperature, stream=self.stream
                )
            except BackendError as error:
                self._failed(decision, reservation, error, attempts)
                continue
            except BaseException:
                self._abandoned(decision, reservation)
                raise
            accuracy = self._grade(messages, completion.text, reference)
            return self._finish(decision, reservation, completion, accuracy, attempts)

    async def aroute(
        self, prompt: Prompt, context: str | None, reference: str | None
    ) -> RouteResult:
        messages = self._messages(prompt)
        attempts: list[Attempt] = []
        while True:
            decision, reservation = self._next(context, messages, attempts)
            spec = self.specs[decision.model]
            try:
                completion = await spec.acomplete(
                    messages, temperature=self.temperature, stream=self.stream
                )
            except BackendError as error:
                self._failed(decision, reservation, error, attempts)
                continue
            except BaseException:  # cancelled, or a bug in a custom backend
                self._abandoned(decision, reservation)
                raise
            accuracy = await self._agrade(messages, completion.text, reference)
            return self._finish(decision, reservation, completion, accuracy, attempts)

    # ==================== Shared steps ====================

    def _messages(self, prompt: Prompt) -> list[Message]:
        """Check the prompt before any decision: bad input is no model's failure, so it must
        neither be fed back nor leave a decision waiting."""
        messages = to_messages(prompt)
        validate_call(messages, "any", None, self.temperature)
        return messages

    def _next(
        self, context: str | None, messages: Sequence[Message], attempts: list[Attempt]
    ) -> tuple[Decision, Reservation | None]:
        """The next call: the learner's own choice first, then, for each fallback, the remaining
        model the learner ranks highest (selected with ``allowed=[it]``, so that the decision is
        recorded and its feedback counted like any other). Models already tried, with an open
        circuit, or whose worst-case cost does not fit the budget are left out."""
        if self.spending is None:
            return self._choose(context, messages, attempts), None
        while True:
            with self.spending.transaction():  # what fits, select, reserve: one atomic step
                decision = self._choose(context, messages, attempts)
                bound = cost_bound(self.specs[decision.model], messages)
                reservation = self.spending.reserve(decision.context, bound)
            if reservation is not None:
                return decision, reservation
            # Only with a budget shared across replicas: another one took the money between
            # "what fits" and "reserve". Close the decision unjudged and choose again.
            self.health.released(decision.model)

    def _choose(
        self, context: str | None, messages: Sequence[Message], attempts: list[Attempt]
    ) -> Decision:
        blocked = self.health.blocked()
        unaffordable = self._unaffordable(context, messages)
        excluded = {a.model for a in attempts} | set(blocked) | set(unaffordable)
        remaining = [m for m in self.router.models if m not in excluded]
        if not remaining or len(attempts) >= self.max_attempts:
            reasons = {**unaffordable, **blocked}
            why = "; ".join(f"{m}: {r}" for m, r in reasons.items())
            message = (
                f"no model answered in {len(attempts)} attempt(s) (max_attempts="
                f"{self.max_attempts})" + (f"; unavailable: {why}" if why else "")
            )
            if unaffordable and not remaining and len(attempts) < self.max_attempts:
                raise BudgetExceeded(message)
            raise AllModelsFailedError(message, attempts)
        if not attempts:
            decision = self.router.select(context, exclude=sorted(excluded) or None)
        else:
            ranking = self.router.probabilities(context)
            best = max(remaining, key=ranking.__getitem__)
            decision = self.router.select(context, allowed=[best])
        self.health.started(decision.model)
        return decision

    def _unaffordable(self, context: str | None, messages: Sequence[Message]) -> dict[str, str]:
        if self.spending is None:
            return {}
        left = self.spending.remaining(self.router._context(context))
        bounds = {m: cost_bound(self.specs[m], messages) for m in self.router.models}
        return {
            m: f"worst-case cost {b:.6f} USD exceeds the {left:.6f} USD left"
            for m, b in bounds.items()
            if b > left
        }

    def _failed(
        self,
        decision: Decision,
        reservation: Reservation | None,
        error: BackendError,
        attempts: list[Attempt],
    ) -> None:
        """Feed a failed call back as zero accuracy with its real latency; remember it."""
        latency = error.latency if math.isfinite(error.latency) and error.latency >= 0 else 0.0
        self.router.feedback(decision, accuracy=0.0, cost=0.0, latency=latency)
        if reservation is not None and self.spending is not None:
            self.spending.settle(reservation, 0.0)
        self.health.failed(decision.model)
        if isinstance(error, RateLimitError) and error.retry_after:
            self.health.hold(decision.model, error.retry_after)
        logger.warning("pickllm: %s failed: %s", decision.model, error)
        attempts.append(Attempt(decision, str(error)))

    def _abandoned(self, decision: Decision, reservation: Reservation | None) -> None:
        """A call ended by something other than a backend error (cancellation): release its
        reservation and close its decision without judging the model."""
        if reservation is not None and self.spending is not None:
            self.spending.settle(reservation, 0.0)
        self.health.released(decision.model)

    def _finish(
        self,
        decision: Decision,
        reservation: Reservation | None,
        completion: Completion,
        accuracy: float | None,
        attempts: list[Attempt],
    ) -> RouteResult:
        """Price the call, settle the budget, apply the feedback when graded, build the result."""
        cost = self.specs[decision.model].cost(completion.usage)
        if reservation is not None and self.spending is not None:
            self.spending.settle(reservation, cost)
        self.health.succeeded(decision.model)
        reward = None
        if accuracy is not None:
            reward = self.router.feedback(
                decision, accuracy=accuracy, cost=cost, latency=completion.latency
            )
        return RouteResult(
            text=completion.text,
            model=decision.model,
            decision=decision,
            cost=cost,
            cost_estimated=completion.usage.estimated,
            latency=completion.latency,
            time_to_first_token=completion.time_to_first_token,
            input_tokens=completion.usage.input_tokens,
            output_tokens=completion.usage.output_tokens,
            accuracy=accuracy,
            reward=reward,
            completion=completion,
            attempts=(*attempts, Attempt(decision)),
        )

    def _grade(self, messages: Sequence[Message], text: str, reference: str | None) -> float | None:
        if self.scorer is None:
            return None
        try:
            return self.scorer.score(_prompt_text(messages), text, reference)
        except ScorerError:
            logger.exception("pickllm: the scorer failed; the decision awaits feedback")
            return None

    async def _agrade(
        self, messages: Sequence[Message], text: str, reference: str | None
    ) -> float | None:
        if self.scorer is None:
            return None
        try:
            return await self.scorer.ascore(_prompt_text(messages), text, reference)
        except ScorerError:
            logger.exception("pickllm: the scorer failed; the decision awaits feedback")
            return None
