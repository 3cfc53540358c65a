"""One configured router as the gateway runs it: the learner, its breaker, its budget.

The gateway makes its own upstream calls (it forwards whole request bodies), and chooses and
settles them with the :class:`pickllm.attempts.Attempts` of :meth:`pickllm.Router.route`: the
learner's choice first, then for each fallback the remaining model the learner ranks highest;
models already tried, with an open circuit, or whose worst-case cost does not fit the budget are
left out. Each attempt gets the :class:`Limits` of ``route()``: what is left of the request's
``deadline``, cut to ``attempt_deadline``, and ``max_response_bytes``. With ``shared = {url,
name}`` the budget is the one in Redis, so that no number of workers or replicas overspends it.
With ``contexts = {kind = "prompts"}`` a request that names no context is routed in the context
its prompt's text is assigned to (:func:`chat_text`; see docs/contexts.md).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from pickllm.attempts import AllModelsFailedError, Attempt, Attempts, DeadlinePassedError, Ticket
from pickllm.budget import BudgetExceeded, BudgetUnavailable, Spending, worst_case_cost
from pickllm.errors import ConfigError, PickLLMError, PromptError
from pickllm.gateway.config import GatewayConfig, RouterConfig
from pickllm.gateway.errors import APIError
from pickllm.gateway.proxy import Limits
from pickllm.health import Health
from pickllm.router import Router

if TYPE_CHECKING:
    from pickllm.state.budget import SharedSpending  # imports redis: only with shared = ...

__all__ = ["CallSize", "RoutedModels", "chat_text"]


class CallSize(NamedTuple):
    """What bounds a request's cost: its body's bytes and number of messages (the prompt), the
    choices it asks for (``n``) and its own cap on tokens per choice, if any."""

    prompt_bytes: int
    messages: int
    choices: int = 1
    max_tokens: int | None = None


class RoutedModels:
    """A router's learner, breaker and budget (one per ``[routers.NAME]``)."""

    def __init__(self, name: str, config: RouterConfig, gateway: GatewayConfig) -> None:
        self.name = name
        self.config = config
        self.gateway = gateway
        shared = config.build_shared()
        self.router = Router(
            list(config.models),
            policy=config.policy.build(),
            reward=config.build_reward(),
            seed=config.seed,
            max_pending=config.max_pending,
            default_context=config.default_context,
            shared=shared,
            contexts=config.build_contexts(),
            **_optional_arguments(config),
        )
        if config.warm_start is not None:  # loaded and checked with the config
            seeds = config.warm_start.load(list(config.models), Path.cwd())
            self.router.warm_start(
                config.warm_start.means_of(seeds), weight=config.warm_start.weight
            )
        self.health = Health(config.build_breaker(), config.models, max_hold=config.max_retry_after)
        budget = config.build_budget()
        self.spending: Spending | SharedSpending | None = None
        self._spent: float | None = None  # a shared budget's, as last read
        if budget is not None:  # with shared state, its accounts live in Redis
            self.spending = self.router._shared_spending(budget) or Spending(budget)
        self.deadline_name = f"request deadline of {config.deadline:g} s"
        self.attempts: Attempts[CallSize] = Attempts(
            self.router,
            self.health,
            self.spending,
            config.max_attempts,
            self._bound,
            deadline_name=self.deadline_name,
            clock=_loop_time,
        )

    def spent(self) -> float | None:
        """USD spent (None without a budget): exact for a budget in memory; for one in Redis,
        as of the last :meth:`refresh_spent` (the sweeper's, about every second), since
        nothing on the event loop waits on Redis."""
        if self.spending is None:
            return None
        if isinstance(self.spending, Spending):
            return float(self.spending.spent())
        return self._spent

    async def refresh_spent(self) -> None:
        """Read a shared budget's spending again (kept as it was while Redis is away)."""
        if self.spending is not None and not isinstance(self.spending, Spending):
            with contextlib.suppress(PickLLMError):
                self._spent = float(await self.spending.aspent())

    @property
    def shared(self) -> bool:
        return self.config.shared is not None

    @property
    def fails_closed(self) -> bool:
        """Whether its budget is in Redis and refuses calls while Redis is unavailable."""
        shared = self.router._shared
        return (
            self.spending is not None
            and shared is not None
            and shared.config.budget_outage == "fail_closed"
        )

    def deadline(self) -> float | None:
        """When a request starting now must be answered, on the event loop's clock."""
        seconds = self.config.deadline
        return None if seconds is False else _loop_time() + seconds

    def limits(self, deadline: float | None) -> Limits:
        """The limits of one attempt of a request due at ``deadline``."""
        name = self.deadline_name
        attempt = self.config.attempt_deadline
        if attempt is not False:
            due = _loop_time() + attempt
            if deadline is None or due < deadline:
                deadline, name = due, f"attempt deadline of {attempt:g} s"
        size = self.config.max_response_bytes
        return Limits(deadline, name, None if size is False else size)

    @contextmanager
    def prompt_scope(self, messages: list[Any], context: str | None) -> Iterator[str | None]:
        """The context one request's attempts select in: the client's, or with prompt contexts
        (and no context from the client, or ``combine``) its prompt's cluster; during the
        warm-up the selections inside record the prompt. A request with no text to read (images
        only, say) keeps the client's context, or the default one. A prompt longer than
        ``max_prompt_bytes`` is a 400 before any upstream call."""
        if self.config.contexts is None:
            yield context
            return
        text = chat_text(messages)
        if not text.strip():
            yield context
            return
        with ExitStack() as stack:
            try:
                context = stack.enter_context(self.router._prompt_scope(text, context))
            except PromptError as error:
                settings = self.router.prompt_contexts
                size = len(text.encode("utf-8", "surrogatepass"))
                long = settings is not None and size > settings.max_prompt_bytes
                raise APIError(
                    f"router {self.name!r}: {error}",
                    param="messages",
                    code="prompt_too_long" if long else "invalid_prompt",
                ) from None
            yield context

    async def next(
        self, context: str | None, prompt: CallSize, tried: list[Attempt], deadline: float | None
    ) -> Ticket:
        """The next call of one request (its cost reserved), or the refusal to make one: 504
        once the request's ``deadline`` has passed, 429 when the budget leaves no model, 502
        when every attempt failed, 503 when no model could be tried at all."""
        try:
            return await self.attempts.anext(context, prompt, tried, deadline)
        except BudgetExceeded as error:
            raise APIError(
                f"router {self.name!r}: {error}",
                status=429,
                type="insufficient_quota",
                code="budget_exceeded",
            ) from None
        except BudgetUnavailable as error:  # a shared budget's Redis did not answer in time
            raise APIError(
                f"router {self.name!r}: {error}",
                status=503,
                type="server_error",
                code="budget_unavailable",
            ) from None
        except AllModelsFailedError as error:
            failures = "; ".join(f"{a.model}: {a.error}" for a in error.attempts)
            message = f"router {self.name!r}: {error.message}" + (
                f" ({failures})" if failures else ""
            )
            if isinstance(error, DeadlinePassedError):
                status, code = 504, "deadline_exceeded"
            elif error.attempts:
                status, code = 502, "upstream_failed"
            else:
                status, code = 503, "no_model_available"
            raise APIError(message, status=status, type="server_error", code=code) from None

    def _bound(self, model: str, size: CallSize) -> float:
        """The most the call can cost: the prompt once, and each of its choices up to the
        model's max_tokens (or the request's own, when lower)."""
        spec = self.gateway.models[model]
        if spec.max_tokens is None:
            raise ConfigError(f"budgets need max_tokens on every model; {model!r} has none")
        tokens = (
            spec.max_tokens if size.max_tokens is None else min(size.max_tokens, spec.max_tokens)
        )
        return worst_case_cost(
            size.prompt_bytes,
            size.messages,
            tokens * size.choices,
            spec.input_price,
            spec.output_price,
        )


def chat_text(messages: list[Any]) -> str:
    """The text prompt contexts read from a chat request: the text of every message, in order
    and whatever its role, joined by newlines (as ``Router.route()`` joins chat messages); a
    message's text is its string ``content``, or the ``text`` of its ``{"type": "text"}`` parts.
    Other parts (images, audio) and messages without content (tool calls) add nothing."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            )
    return "\n".join(parts)


def _optional_arguments(config: RouterConfig) -> dict[str, Any]:
    """``decision_log``, when given."""
    arguments: dict[str, Any] = {}
    if config.decision_log is not None:
        arguments["decision_log"] = config.decision_log
    return arguments


def _loop_time() -> float:
    """The event loop's clock, which request deadlines and :class:`Limits` are on."""
    return asyncio.get_running_loop().time()
