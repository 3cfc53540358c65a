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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from pickllm._core import Decision
from pickllm.backends.base import Completion, Message, validate_call
from pickllm.backends.errors import BackendError, RateLimitError
from pickllm.errors import ArgumentTypeError, PickLLMError
from pickllm.models import Model
from pickllm.scorers.base import ScorerAdapter
from pickllm.scorers.errors import ScorerError

if TYPE_CHECKING:
    from pickllm.router import Router

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
        self.attempts = tuple(attempts)


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


class _Cooldowns:
    """Models a 429 told us to leave alone, and until when (monotonic seconds). Thread-safe."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def hold(self, model: str, seconds: float) -> None:
        with self._lock:
            until = time.monotonic() + seconds
            self._until[model] = max(until, self._until.get(model, 0.0))

    def active(self) -> dict[str, float]:
        """Models still cooling down, with the seconds left."""
        now = time.monotonic()
        with self._lock:
            return {m: t - now for m, t in self._until.items() if t > now}


class RouteLoop:
    """The route loop of one router: its models' specs, scorer, retry bound and cooldowns.
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
    ) -> None:
        self.router = router
        self.specs = specs
        self.scorer = scorer
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.stream = stream
        self.cooldowns = _Cooldowns()

    # ==================== Sync and async entry points ====================

    def route(self, prompt: Prompt, context: str | None, reference: str | None) -> RouteResult:
        messages = self._messages(prompt)
        attempts: list[Attempt] = []
        while True:
            decision = self._next(context, attempts)
            spec = self.specs[decision.model]
            try:
                completion = spec.complete(
                    messages, temperature=self.temperature, stream=self.stream
                )
            except BackendError as error:
                self._failed(decision, error, attempts)
                continue
            accuracy = self._grade(messages, completion.text, reference)
            return self._finish(decision, completion, accuracy, attempts)

    async def aroute(
        self, prompt: Prompt, context: str | None, reference: str | None
    ) -> RouteResult:
        messages = self._messages(prompt)
        attempts: list[Attempt] = []
        while True:
            decision = self._next(context, attempts)
            spec = self.specs[decision.model]
            try:
                completion = await spec.acomplete(
                    messages, temperature=self.temperature, stream=self.stream
                )
            except BackendError as error:
                self._failed(decision, error, attempts)
                continue
            accuracy = await self._agrade(messages, completion.text, reference)
            return self._finish(decision, completion, accuracy, attempts)

    # ==================== Shared steps ====================

    def _messages(self, prompt: Prompt) -> list[Message]:
        """Check the prompt before any decision: bad input is no model's failure, so it must
        neither be fed back nor leave a decision waiting."""
        messages = to_messages(prompt)
        validate_call(messages, "any", None, self.temperature)
        return messages

    def _next(self, context: str | None, attempts: list[Attempt]) -> Decision:
        """The first attempt is the learner's own choice; each fallback is the remaining model
        the learner ranks highest, selected with ``allowed=[it]`` so that the decision is
        recorded and its feedback counted like any other. Models cooling down are skipped."""
        cooling = self.cooldowns.active()
        excluded = {a.model for a in attempts} | set(cooling)
        remaining = [m for m in self.router.models if m not in excluded]
        if not remaining or len(attempts) >= self.max_attempts:
            why = [f"{m} is cooling down for {s:.1f} s after a 429" for m, s in cooling.items()]
            raise AllModelsFailedError(
                f"no model answered in {len(attempts)} attempt(s) (max_attempts="
                f"{self.max_attempts})" + (f"; {'; '.join(why)}" if why else ""),
                attempts,
            )
        if not attempts:
            return self.router.select(context, exclude=sorted(excluded) or None)
        ranking = self.router.probabilities(context)
        return self.router.select(context, allowed=[max(remaining, key=ranking.__getitem__)])

    def _failed(self, decision: Decision, error: BackendError, attempts: list[Attempt]) -> None:
        """Feed a failed call back as zero accuracy with its real latency; remember it."""
        latency = error.latency if math.isfinite(error.latency) and error.latency >= 0 else 0.0
        self.router.feedback(decision, accuracy=0.0, cost=0.0, latency=latency)
        if isinstance(error, RateLimitError) and error.retry_after:
            self.cooldowns.hold(decision.model, error.retry_after)
        logger.warning("pickllm: %s failed: %s", decision.model, error)
        attempts.append(Attempt(decision, str(error)))

    def _finish(
        self,
        decision: Decision,
        completion: Completion,
        accuracy: float | None,
        attempts: list[Attempt],
    ) -> RouteResult:
        """Price the call, apply the feedback when graded, and build the result."""
        cost = self.specs[decision.model].cost(completion.usage)
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
