"""One configured router as the gateway runs it: the learner, its breaker, its budget.

The gateway makes its own upstream calls (it forwards whole request bodies), so it picks models
the way :meth:`pickllm.Router.route` does, with the same public pieces: the learner's choice
first, then for each fallback the remaining model the learner ranks highest; models already
tried, with an open circuit, or whose worst-case cost does not fit the budget are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pickllm._core import Decision
from pickllm.budget import BudgetExceeded, Reservation, Spending
from pickllm.errors import ConfigError
from pickllm.gateway.config import GatewayConfig, RouterConfig
from pickllm.gateway.errors import APIError
from pickllm.health import Health
from pickllm.router import Router
from pickllm.state import RedisState

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
        self.router = Router(
            list(config.models),
            policy=config.policy.build(),
            reward=config.build_reward(),
            seed=config.seed,
            max_pending=config.max_pending,
            default_context=config.default_context,
            **_optional_arguments(config),
        )
        self.health = Health(config.build_breaker(), config.models)
        budget = config.build_budget()
        self.spending = None if budget is None else Spending(budget)

    @property
    def shared(self) -> bool:
        return self.config.shared is not None

    def next(
        self, context: str | None, prompt_bytes: int, messages: int, attempts: list[Attempt]
    ) -> tuple[Decision, Reservation | None]:
        """The next model to call for one request, selected (and its cost reserved)."""
        if self.spending is None:
            return self._choose(context, prompt_bytes, messages, attempts), None
        with self.spending.transaction():
            decision = self._choose(context, prompt_bytes, messages, attempts)
            bound = self._bound(decision.model, prompt_bytes, messages)
            reservation = self.spending.reserve(decision.context, bound)
        assert reservation is not None, "chosen among the models that fit, under the same lock"
        return decision, reservation

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
    """``shared`` (learning across workers and replicas) and ``decision_log``, when given."""
    arguments: dict[str, Any] = {}
    if config.shared is not None:
        arguments["shared"] = RedisState(**config.shared)
    if config.decision_log is not None:
        arguments["decision_log"] = config.decision_log
    return arguments
