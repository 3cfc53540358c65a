"""The route loop behind :meth:`Router.route`: pick, call, time, price, score, learn.

One query: the learner picks a model (:meth:`Router.select`), its backend is called (latency and
token usage come from the call), the cost follows from the model's prices, the scorer grades the
answer, and :meth:`Router.feedback` applies the reward. A failed call (connection refused,
timeout, 429, 5xx, malformed body, broken stream) is fed back as a zero-accuracy observation with
its real latency, and the query goes to the remaining model the learner ranks highest, within
``max_attempts`` calls, all within ``deadline`` seconds (the scorer's grading included). The
Retry-After of an error answer (a 429's, a 503's) keeps that model out of every selection until
it has passed (at most ``max_retry_after``). If every attempt fails, one
:class:`AllModelsFailedError` lists them all.

Which model each attempt calls, and the settling of each call exactly once (answered, failed or
abandoned), are :class:`pickllm.attempts.Attempts`' (the gateway's too). The loop talks to its
router through the narrow :class:`Selector` protocol.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import anyio

from pickllm._core import Decision
from pickllm.attempts import AllModelsFailedError, Attempt, Attempts, Selector, Ticket
from pickllm.backends.base import Completion, Message, check_unicode, validate_call
from pickllm.backends.errors import (
    BackendError,
    BackendStatusError,
    DeadlineExceededError,
    InvalidRequestError,
)
from pickllm.budget import Budget, Spending, cost_bound
from pickllm.errors import ArgumentTypeError, ConfigError
from pickllm.health import CircuitBreaker, Health
from pickllm.models import Model, limits_taken
from pickllm.scorers.base import ScorerAdapter, ScorerLike, as_scorer
from pickllm.scorers.errors import ScorerTimeoutError
from pickllm.tracing import OFF, RouteTrace, _Off, _Span, provider_of, route_trace

if TYPE_CHECKING:
    from pickllm.state.budget import SharedSpending

__all__ = [
    "AllModelsFailedError",
    "Attempt",
    "Prompt",
    "RouteLoop",
    "RouteOptions",
    "RouteResult",
    "Selector",
    "to_messages",
]

logger = logging.getLogger("pickllm")

#: A prompt: plain text (one user message) or chat messages.
Prompt = str | Sequence[Message]


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
    #: The scorer's grade; None without a scorer (or when it failed or had no grade within the
    #: route's deadline): the decision then awaits :meth:`Router.feedback`, e.g. from a person.
    accuracy: float | None
    #: The reward applied to the learner; None while no feedback was applied.
    reward: float | None
    completion: Completion
    #: Every call made for this query: failed ones first, the answering one last.
    attempts: tuple[Attempt, ...]

    @classmethod
    def _of(cls, **fields: Any) -> RouteResult:
        """The result with ``fields`` (all of them), as the generated ``__init__`` builds it but
        in one step: a frozen dataclass sets each field through ``object.__setattr__``, which
        for these thirteen is a sixth of what routing adds to a call. For the route loop only,
        whose fields are typed already."""
        result = object.__new__(cls)
        result.__dict__.update(fields)
        return result


#: Routers get a circuit breaker unless told otherwise (the config is immutable, so one
#: shared default is safe).
DEFAULT_BREAKER = CircuitBreaker()
#: Seconds for one route()/aroute() call: well under the minute after which callers and
#: gateways in front of them give up anyway.
DEFAULT_DEADLINE = 30.0
#: Bytes read at most from one answer: far above any chat answer, far below what hurts memory.
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
#: The longest a Retry-After holds a model out, in seconds.
DEFAULT_MAX_RETRY_AFTER = 300.0


def _seconds(name: str, value: object, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """How :meth:`Router.route` runs, validated in one place (``Router``'s keyword arguments
    of the same names build it; see :class:`Router` for each)."""

    scorer: ScorerLike | None = None
    max_attempts: int = 3
    temperature: float | None = None
    stream: bool = False
    breaker: CircuitBreaker | None = DEFAULT_BREAKER
    budget: Budget | None = None
    #: Seconds for one route()/aroute() call, every attempt included (None: unbounded).
    deadline: float | None = DEFAULT_DEADLINE
    #: Seconds for one attempt, within ``deadline`` (None: whatever is left of it).
    attempt_deadline: float | None = None
    #: Bytes read at most from one response, body or stream (None: unbounded).
    max_response_bytes: int | None = DEFAULT_MAX_RESPONSE_BYTES
    #: The longest a Retry-After holds a model out, in seconds.
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ConfigError(f"max_attempts must be an integer >= 1, got {attempts!r}")
        temperature = self.temperature
        if temperature is not None and (
            isinstance(temperature, bool)
            or not isinstance(temperature, int | float)
            or not math.isfinite(temperature)
            or temperature < 0
        ):
            raise ConfigError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if not isinstance(self.stream, bool):
            raise ArgumentTypeError(f"stream must be a bool, got {self.stream!r}")
        if self.breaker is not None and not isinstance(self.breaker, CircuitBreaker):
            raise ArgumentTypeError(
                f"breaker must be a CircuitBreaker or None, got {self.breaker!r}"
            )
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise ArgumentTypeError(f"budget must be a Budget or None, got {self.budget!r}")
        _seconds("deadline", self.deadline)
        _seconds("attempt_deadline", self.attempt_deadline)
        _seconds("max_retry_after", self.max_retry_after, allow_none=False)
        size = self.max_response_bytes
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ConfigError(f"max_response_bytes must be an integer >= 1 or None, got {size!r}")
        if self.scorer is not None:
            as_scorer(self.scorer)  # raises for something that is no scorer

    @property
    def uses_route(self) -> bool:
        """Whether anything here only makes sense with backends (route())."""
        return self.scorer is not None or self.budget is not None


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


#: No scope at all (a nullcontext can be entered any number of times, also at once).
_NO_SCOPE: contextlib.AbstractContextManager[object] = contextlib.nullcontext()


class RouteLoop:
    """The route loop of one router: its models' specs and its :class:`RouteOptions`, with the
    health and spending state they need. The sync and async paths share every step but the
    call and the grading."""

    def __init__(
        self,
        selector: Selector,
        specs: dict[str, Model],
        options: RouteOptions,
        *,
        spending: Spending | SharedSpending | None = None,
    ) -> None:
        """``spending`` keeps the budget's accounts (default: in this process's memory)."""
        missing = [name for name in selector.models if name not in specs]
        if missing:
            raise ConfigError(f"give every model a backend (Model(...)) or none; missing {missing}")
        if options.budget is not None:
            unbounded = [name for name, spec in specs.items() if spec.max_tokens is None]
            if unbounded:
                raise ConfigError(
                    f"a budget needs max_tokens on every model (it bounds a call's cost); "
                    f"missing on {unbounded}"
                )
        self.selector = selector
        self.specs = specs
        self.options = options
        self.scorer: ScorerAdapter | None = (
            None if options.scorer is None else as_scorer(options.scorer)
        )
        self.health = Health(options.breaker, selector.models, max_hold=options.max_retry_after)
        #: Models whose backends' async calls take no deadline: cancelled at it instead.
        self._cancelled_at_deadline = frozenset(
            name
            for name, spec in specs.items()
            if "deadline" not in limits_taken(spec.backend.acomplete)
        )
        if options.budget is None:
            spending = None
        elif spending is None:
            spending = Spending(options.budget)
        self.spending: Spending | SharedSpending | None = spending
        deadline = "route deadline" + (f" of {options.deadline:g} s" if options.deadline else "")
        self.attempts: Attempts[Sequence[Message]] = Attempts(
            selector,
            self.health,
            spending,
            options.max_attempts,
            lambda model, messages: cost_bound(specs[model], messages),
            deadline_name=deadline,
        )

    # ==================== Sync and async entry points ====================

    def route(self, prompt: Prompt, context: str | None, reference: str | None) -> RouteResult:
        messages, deadline = self._start(prompt, reference)
        attempts: list[Attempt] = []
        with route_trace(context) as trace:
            while True:
                ticket = self.attempts.next(context, messages, attempts, deadline)
                with _Call(self, trace, ticket, attempts) as call:
                    try:
                        options = self.options
                        completion = call.spec.complete(
                            messages,
                            temperature=options.temperature,
                            stream=options.stream,
                            deadline=self._call_deadline(deadline),
                            max_response_bytes=options.max_response_bytes,
                        )
                        cost = self._price(call.spec, completion)
                    except Exception as exc:
                        call.failed(exc)
                        continue
                    call.answered(completion, cost)
                    accuracy = None
                    if self.scorer is not None:  # a score span only around a real grading
                        with trace.scoring() as scoring:
                            accuracy = self._grade(messages, completion.text, reference, deadline)
                            scoring.graded(accuracy)
                    return self._result(trace, ticket, completion, cost, accuracy, attempts)

    async def aroute(
        self, prompt: Prompt, context: str | None, reference: str | None
    ) -> RouteResult:
        async with self.attempts.session():  # a shared budget's connections, for this call
            return await self._aroute(prompt, context, reference)

    async def _aroute(
        self, prompt: Prompt, context: str | None, reference: str | None
    ) -> RouteResult:
        messages, deadline = self._start(prompt, reference)
        attempts: list[Attempt] = []
        with route_trace(context) as trace:
            while True:
                ticket = await self.attempts.anext(context, messages, attempts, deadline)
                with _Call(self, trace, ticket, attempts) as call:
                    try:
                        options = self.options
                        call_deadline = self._call_deadline(deadline)
                        with self._outer_deadline(call.spec, call_deadline):
                            completion = await call.spec.acomplete(
                                messages,
                                temperature=options.temperature,
                                stream=options.stream,
                                deadline=call_deadline,
                                max_response_bytes=options.max_response_bytes,
                            )
                        cost = self._price(call.spec, completion)
                    except Exception as exc:
                        call.failed(exc)
                        continue
                    call.answered(completion, cost)
                    await self.attempts.flush()  # a shared budget's settlements, off the loop
                    accuracy = None
                    if self.scorer is not None:
                        with trace.scoring() as scoring:
                            accuracy = await self._agrade(
                                messages, completion.text, reference, deadline
                            )
                            scoring.graded(accuracy)
                    return self._result(trace, ticket, completion, cost, accuracy, attempts)

    # ==================== Shared steps ====================

    def _start(self, prompt: Prompt, reference: object) -> tuple[list[Message], float | None]:
        """Check the input before any decision: bad input is no model's failure, so it must
        neither be fed back nor leave a decision waiting (nor be found after a paid call)."""
        messages = to_messages(prompt)
        validate_call(messages, "any", None, self.options.temperature)
        if reference is not None:
            if not isinstance(reference, str):
                raise ArgumentTypeError(
                    f"reference must be a str or None, got {type(reference).__name__}"
                )
            check_unicode(reference, "reference")
        deadline = self.options.deadline
        return messages, None if deadline is None else time.monotonic() + deadline

    def _call_deadline(self, deadline: float | None) -> float | None:
        """The deadline of one call: the route's, cut to ``attempt_deadline``."""
        if self.options.attempt_deadline is None:
            return deadline
        attempt = time.monotonic() + self.options.attempt_deadline
        return attempt if deadline is None else min(deadline, attempt)

    def _outer_deadline(
        self, spec: Model, deadline: float | None
    ) -> contextlib.AbstractContextManager[object]:
        """A backend that takes no ``deadline`` is cancelled at it (async calls only)."""
        if deadline is None or spec.name not in self._cancelled_at_deadline:
            return _NO_SCOPE
        return anyio.fail_after(max(deadline - time.monotonic(), 0.0))

    def _as_failure(self, exc: Exception, ticket: Ticket) -> BackendError:
        """What a call that raised means for its model. Anything a backend or its answer does
        wrong (hostile usage, a bug in a custom backend) is that model's failure."""
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, InvalidRequestError):
            raise exc  # the request itself is wrong: no other model would do better
        model = ticket.decision.model
        label = type(self.specs[model].backend).__name__
        if isinstance(exc, TimeoutError):  # our cancel scope around a backend without deadline
            return DeadlineExceededError(
                "the call's deadline passed", backend=label, model=model, latency=0.0
            )
        return BackendError(
            f"the call or its answer raised {type(exc).__name__}: {exc}",
            backend=label,
            model=model,
            latency=0.0,
        )

    def _price(self, spec: Model, completion: Completion) -> float:
        cost = spec.cost(completion.usage)
        if not math.isfinite(cost):
            raise OverflowError(f"the reported usage {completion.usage} prices to {cost} USD")
        return cost

    def _failed(self, ticket: Ticket, error: BackendError, attempts: list[Attempt]) -> BackendError:
        """A failed call: the model's failure is fed back (an error status's Retry-After, a
        429's or a 503's, holds it out, as in the gateway); congestion on our side releases the
        call without judging the model. Returns ``error``."""
        attempts.append(Attempt(ticket.decision, str(error)))
        if not error.blames_model:
            logger.warning("pickllm: %s not called: %s", ticket.decision.model, error)
            self.attempts.abandon(ticket)
            return error
        retry_after = error.retry_after if isinstance(error, BackendStatusError) else None
        self.attempts.failed(ticket, error, error.latency, retry_after=retry_after)
        return error

    def _result(
        self,
        trace: RouteTrace | _Off,
        ticket: Ticket,
        completion: Completion,
        cost: float,
        accuracy: float | None,
        attempts: list[Attempt],
    ) -> RouteResult:
        """Apply the feedback when graded, build the result and record it in the trace."""
        decision = ticket.decision
        reward = None
        if accuracy is not None:
            reward = self.selector.feedback(
                decision, accuracy=accuracy, cost=cost, latency=completion.latency
            )
        result = RouteResult._of(
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
        trace.routed(result)
        return result

    # The scorer grades within what is left of the route's deadline. The answer is paid for by
    # then (charged, counted as the model's success), so a scorer that fails or runs out of
    # time is the scorer's failure, never the model's: the decision awaits feedback.

    def _grade(
        self,
        messages: Sequence[Message],
        text: str,
        reference: str | None,
        deadline: float | None,
    ) -> float | None:
        assert self.scorer is not None  # route grades only with a scorer
        try:
            return self.scorer.score(_prompt_text(messages), text, reference, deadline=deadline)
        except Exception as error:  # a ScorerError, or a bug in a custom scorer
            _scorer_failed(error)
            return None

    async def _agrade(
        self,
        messages: Sequence[Message],
        text: str,
        reference: str | None,
        deadline: float | None,
    ) -> float | None:
        assert self.scorer is not None  # aroute awaits no coroutine without a scorer
        try:
            return await self.scorer.ascore(
                _prompt_text(messages), text, reference, deadline=deadline
            )
        except Exception as error:
            _scorer_failed(error)
            return None


class _Call:
    """One attempt of a route, a context manager around its call: on the way in, the model's
    spec and the attempt's trace span; on the way out, the span ended and the ticket abandoned.
    Abandoning does nothing to a ticket settled already (:meth:`answered`, :meth:`failed`) and
    settles every other, whatever left the block: an exception, a cancellation (also while the
    scorer ran), a bug."""

    __slots__ = ("_attempts", "_loop", "_ticket", "_trace", "span", "spec")

    def __init__(
        self, loop: RouteLoop, trace: RouteTrace | _Off, ticket: Ticket, attempts: list[Attempt]
    ) -> None:
        self._loop, self._trace, self._ticket, self._attempts = loop, trace, ticket, attempts
        self.span: _Span | _Off = OFF

    def __enter__(self) -> _Call:
        try:
            self.spec = spec = self._loop.specs[self._ticket.decision.model]
            if not isinstance(self._trace, _Off):  # no span without a tracer provider
                self.span = self._trace.attempt(
                    self._ticket.decision,
                    len(self._attempts) + 1,
                    provider_of(spec.backend),
                    spec.provider_model,
                )
        except BaseException:
            self._loop.attempts.abandon(self._ticket)
            raise
        return self

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        self.span.end()
        self._loop.attempts.abandon(self._ticket)  # only if nothing above settled it

    def failed(self, exc: Exception) -> None:
        """The call raised ``exc``: the model's failure, fed back (or the request's, raised)."""
        loop, ticket = self._loop, self._ticket
        self.span.failed(loop._failed(ticket, loop._as_failure(exc, ticket), self._attempts))

    def answered(self, completion: Completion, cost: float) -> None:
        """The call answered, at ``cost``: charged and counted as the model's success."""
        self.span.answered(completion, cost)
        self._loop.attempts.answered(self._ticket, cost)
        self.span.end()


def _scorer_failed(error: Exception) -> None:
    if isinstance(error, ScorerTimeoutError):  # expected under load: no traceback
        logger.warning("pickllm: %s; the decision awaits feedback", error)
    else:
        logger.error("pickllm: the scorer failed; the decision awaits feedback", exc_info=error)
