"""One configured router as the gateway runs it: the learner, its breaker, its budget.

The gateway makes its own upstream calls (it forwards whole request bodies), so it picks models
the way :meth:`pickllm.Router.route` does, with the same public pieces: the learner's choice
first, then for each fallback the remaining model the learner ranks highest; models already
tried, with an open circuit, or whose worst-case cost does not fit the budget are left out.
Each attempt gets the :class:`Limits` of ``route()``: what is left of the request's
``deadline``, cut to ``attempt_deadline``, and ``max_response_bytes``. With ``shared = {url,
name}`` the budget is the one in Redis, so that no number of workers or replicas overspends it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pickllm._core import Decision
from pickllm.budget import BudgetExceeded, Reservation, Spending
from pickllm.errors import ConfigError
from pickllm.gateway.config import GatewayConfig, RouterConfig
from pickllm.gateway.errors import APIError
from pickllm.gateway.proxy import Limits
from pickllm.health import Health
from pickllm.router import Router
from pickllm.state import RedisState

if TYPE_CHECKING:
    from pickllm.state.budget import SharedSpending  # imports redis: only with shared = ...

__all__ = ["RoutedModels", "cost_bound"]

#: Tokens allowed per message for chat-template markup when bounding a prompt (as budget.py).
TEMPLATE_TOKENS = 16


def cost_bound(
    prompt_bytes: int, messages: int, max_tokens: int, input_price: float, output_price: float
) -> float:
    """The most one call can cost: every prompt byte a token (no tokenizer makes more), plus
    template tokens per message, and ``max_tokens`` of output."""
    prompt = prompt_bytes + TEMPLATE_TOKENS * messages
    return (prompt * input_price + max_tokens * output_price) / 1_000_000


@dataclass(frozen=True)
class Attempt:
    model: str
    error: str


class RoutedModels:
    """A router's learner, breaker and budget (one per ``[routers.NAME]``)."""

    def __init__(self, name: str, config: RouterConfig, gateway: GatewayConfig) -> None:
        self.name = name
        self.config = config
        self.gateway = gateway
        shared = None if config.shared is None else RedisState(**config.shared)
        self.router = Router(
            list(config.models),
            policy=config.policy.build(),
            reward=config.build_reward(),
            seed=config.seed,
            max_pending=config.max_pending,
            default_context=config.default_context,
            shared=shared,
            **_optional_arguments(config),
        )
        self.health = Health(config.build_breaker(), config.models, max_hold=config.max_retry_after)
        budget = config.build_budget()
        self.spending: Spending | SharedSpending | None = None
        if budget is not None:  # with shared state, its accounts live in Redis
            self.spending = self.router._shared_spending(budget) or Spending(budget)

    @property
    def shared(self) -> bool:
        return self.config.shared is not None

    def deadline(self) -> float | None:
        """When a request starting now must be answered, on the event loop's clock."""
        seconds = self.config.deadline
        return None if seconds is False else asyncio.get_running_loop().time() + seconds

    def limits(self, deadline: float | None) -> Limits:
        """The limits of one attempt of a request due at ``deadline``."""
        name = f"request deadline of {self.config.deadline:g} s"
        attempt = self.config.attempt_deadline
        if attempt is not False:
            due = asyncio.get_running_loop().time() + attempt
            if deadline is None or due < deadline:
                deadline, name = due, f"attempt deadline of {attempt:g} s"
        size = self.config.max_response_bytes
        return Limits(deadline, name, None if size is False else size)

    def next(
        self,
        context: str | None,
        prompt_bytes: int,
        messages: int,
        attempts: list[Attempt],
        deadline: float | None = None,
    ) -> tuple[Decision, Reservation | None]:
        """The next model to call for one request, selected (and its cost reserved); a 504
        once the request's ``deadline`` has passed."""
        if deadline is not None and attempts and asyncio.get_running_loop().time() >= deadline:
            tried = "; ".join(f"{a.model}: {a.error}" for a in attempts)
            raise APIError(
                f"router {self.name!r}: the request deadline of {self.config.deadline:g} s "
                f"passed after {len(attempts)} attempt(s) ({tried})",
                status=504,
                type="server_error",
                code="deadline_exceeded",
            )
        if self.spending is None:
            return self._choose(context, prompt_bytes, messages, attempts), None
        while True:
            with self.spending.transaction():  # what fits, select, reserve: one atomic step
                decision = self._choose(context, prompt_bytes, messages, attempts)
                bound = self._bound(decision.model, prompt_bytes, messages)
                reservation = self.spending.reserve(decision.context, bound)
            if reservation is not None:
                return decision, reservation
            # Only with a budget shared across workers: another one took the money between
            # "what fits" and "reserve". Close the selection unjudged and choose again.
            self.health.released(decision.model)

    def _choose(
        self, context: str | None, prompt_bytes: int, messages: int, attempts: list[Attempt]
    ) -> Decision:
        blocked = self.health.blocked()
        unaffordable = self._unaffordable(context, prompt_bytes, messages)
        excluded = {a.model for a in attempts} | set(blocked) | set(unaffordable)
        remaining = [m for m in self.router.models if m not in excluded]
        if not remaining or len(attempts) >= self.config.max_attempts:
            raise self._exhausted(attempts, blocked, unaffordable, remaining)
        if not attempts:
            decision = self.router.select(context, exclude=sorted(excluded) or None)
        else:
            ranking = self.router.probabilities(context)
            best = max(remaining, key=ranking.__getitem__)
            decision = self.router.select(context, allowed=[best])
        self.health.started(decision.model)
        return decision

    def _exhausted(
        self,
        attempts: list[Attempt],
        blocked: dict[str, str],
        unaffordable: dict[str, str],
        remaining: list[str],
    ) -> APIError:
        reasons = {**unaffordable, **blocked}
        why = "; ".join(f"{m}: {r}" for m, r in reasons.items())
        tried = "; ".join(f"{a.model}: {a.error}" for a in attempts)
        message = (
            f"router {self.name!r}: no model answered in {len(attempts)} attempt(s)"
            + (f" ({tried})" if tried else "")
            + (f"; unavailable: {why}" if why else "")
        )
        if unaffordable and not remaining and len(attempts) < self.config.max_attempts:
            error = BudgetExceeded(message)
            return APIError(
                str(error), status=429, type="insufficient_quota", code="budget_exceeded"
            )
        if not attempts:
            return APIError(message, status=503, type="server_error", code="no_model_available")
        return APIError(message, status=502, type="server_error", code="upstream_failed")

    def _bound(self, model: str, prompt_bytes: int, messages: int) -> float:
        spec = self.gateway.models[model]
        if spec.max_tokens is None:
            raise ConfigError(f"budgets need max_tokens on every model; {model!r} has none")
        return cost_bound(
            prompt_bytes, messages, spec.max_tokens, spec.input_price, spec.output_price
        )

    def _unaffordable(
        self, context: str | None, prompt_bytes: int, messages: int
    ) -> dict[str, str]:
        if self.spending is None:
            return {}
        left = self.spending.remaining(self.router._context(context))
        bounds = {m: self._bound(m, prompt_bytes, messages) for m in self.router.models}
        return {
            m: f"worst-case cost {b:.6f} USD exceeds the {left:.6f} USD left"
            for m, b in bounds.items()
            if b > left
        }

    def settle_budget(self, reservation: Reservation | None, cost: float) -> None:
        if reservation is not None and self.spending is not None:
            self.spending.settle(reservation, cost)


def _optional_arguments(config: RouterConfig) -> dict[str, Any]:
    """``decision_log``, when given."""
    arguments: dict[str, Any] = {}
    if config.decision_log is not None:
        arguments["decision_log"] = config.decision_log
    return arguments
