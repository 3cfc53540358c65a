"""Cost caps for the route loop: per context (a session, a tenant) and per router.

Before each call the loop bounds what the call can cost: the prompt's UTF-8 bytes plus 16 tokens
per message (no tokenizer turns a byte into more than one token; the 16 cover chat-template
tokens) at the input price, plus the model's ``max_tokens`` at the output price. A model whose
bound does not fit the remaining budget is excluded from selection; when no model fits,
:class:`BudgetExceeded`. The bound is *reserved* while the call runs, so concurrent calls cannot
jointly overspend, and replaced by the actual cost when it returns (a failed call costs 0).
Spending is kept exactly (as fractions), so it equals the sum of the routed costs to the cent.
Spending lives in the router's memory: snapshots and saved files do not carry it.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from pydantic import Field

from pickllm.backends.base import Message
from pickllm.config import _Config
from pickllm.errors import ConfigError, PickLLMError
from pickllm.models import Model

__all__ = [
    "Budget",
    "BudgetExceeded",
    "BudgetUnavailable",
    "Spending",
    "cost_bound",
    "worst_case_cost",
]

#: Tokens allowed per message for chat-template markup when bounding a prompt.
TEMPLATE_TOKENS = 16


class BudgetExceeded(PickLLMError):  # noqa: N818 (the name users look for)
    """No model's worst-case cost fits what is left of a budget."""


class BudgetUnavailable(PickLLMError):  # noqa: N818 (a sibling of BudgetExceeded)
    """A budget shared through Redis cannot be checked (Redis did not answer in time) and the
    shared state says to fail closed (``RedisState.budget_outage``): nothing was called."""


class Budget(_Config):
    """Spending caps in USD: ``per_context`` for each context, ``total`` for the router.

    >>> Budget(per_context=0.50, total=100.0).total
    100.0
    """

    per_context: float | None = Field(default=None, ge=0.0)
    total: float | None = Field(default=None, ge=0.0)

    def model_post_init(self, context: Any, /) -> None:
        if self.per_context is None and self.total is None:
            raise ConfigError("Budget needs per_context, total or both")


def worst_case_cost(
    prompt_bytes: int, messages: int, max_tokens: int, input_price: float, output_price: float
) -> float:
    """The most one call can cost (see the module docs): every prompt byte a token, plus
    ``TEMPLATE_TOKENS`` per message, at ``input_price``, and ``max_tokens`` at ``output_price``
    (USD per million tokens). The route loop's bound and the gateway's."""
    prompt = prompt_bytes + TEMPLATE_TOKENS * messages
    return (prompt * input_price + max_tokens * output_price) / 1_000_000


def cost_bound(model: Model, messages: Sequence[Message]) -> float:
    """The most one call of ``model`` with ``messages`` can cost (see the module docs)."""
    if model.max_tokens is None:
        raise ConfigError(f"budgets need max_tokens on every model; {model.name!r} has none")
    prompt_bytes = sum(len(m["content"].encode()) for m in messages)
    return worst_case_cost(
        prompt_bytes, len(messages), model.max_tokens, model.input_price, model.output_price
    )


@dataclass(frozen=True)
class Reservation:
    context: str
    amount: Fraction
    #: Made within a shared budget's outage allowance, in this process only.
    local: bool = False
    #: The shared budget's id of the reservation ("" for none).
    id: str = ""


class Spending:
    """What one router has spent and reserved, per context and in total. Thread-safe."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        # Re-entrant: the route loop holds it across "what fits? select, reserve" (see
        # `transaction`), so that no concurrent call can take the budget in between.
        self._lock = threading.RLock()
        self._spent: dict[str, Fraction] = {}
        self._reserved: dict[str, Fraction] = {}
        self._spent_total = Fraction(0)
        self._reserved_total = Fraction(0)

    def transaction(self) -> threading.RLock:
        """Hold while deciding what fits and reserving it, as one atomic step."""
        return self._lock

    def remaining(self, context: str) -> float:
        """What the next call in ``context`` may still cost (inf without a cap)."""
        with self._lock:
            return float(self._remaining(context))

    def _remaining(self, context: str) -> Fraction | float:
        left: list[Fraction | float] = [math.inf]
        if self.budget.per_context is not None:
            used = self._spent.get(context, Fraction(0)) + self._reserved.get(context, Fraction(0))
            left.append(Fraction(self.budget.per_context) - used)
        if self.budget.total is not None:
            used = self._spent_total + self._reserved_total
            left.append(Fraction(self.budget.total) - used)
        return min(left)

    def reserve(self, context: str, amount: float) -> Reservation | None:
        """Reserve ``amount`` if it fits, atomically; None if it does not."""
        exact = Fraction(amount)
        with self._lock:
            if exact > self._remaining(context):
                return None
            self._reserved[context] = self._reserved.get(context, Fraction(0)) + exact
            self._reserved_total += exact
            return Reservation(context, exact)

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Replace a reservation by the actual ``cost`` of the call."""
        with self._lock:
            self._reserved[reservation.context] -= reservation.amount
            self._reserved_total -= reservation.amount
            actual = Fraction(cost)
            self._spent[reservation.context] = (
                self._spent.get(reservation.context, Fraction(0)) + actual
            )
            self._spent_total += actual

    async def flush(self) -> None:
        """Nothing to send: the accounts are in memory (a shared budget's sends here)."""

    def session(self) -> contextlib.AbstractAsyncContextManager[object]:
        """Nothing to hold: the accounts are in memory (a shared budget holds its event loop's
        connections while one is open)."""
        return contextlib.nullcontext()

    def spent(self, context: str | None = None) -> Fraction:
        """Exact spending of ``context``, or of the whole router."""
        with self._lock:
            return self._spent_total if context is None else self._spent.get(context, Fraction(0))
