"""Budgets held across replicas: reservations and spending live in Redis, updated atomically.

The same interface as :class:`pickllm.budget.Spending`, chosen by ``Router(..., shared=...)``.
Amounts are kept as whole nano-dollars (integers, exact): a reservation is rounded up and a
cost to the nearest, so a cost within its reservation never exceeds it. Each reservation is
checked against the caps and added by one Lua script, so replicas can never jointly overspend.
A replica that dies holding a reservation leaves it reserved: the budget errs on the safe side.
"""

from __future__ import annotations

import math
import threading
from fractions import Fraction
from typing import Any

import redis

from pickllm.budget import Budget, Reservation

__all__ = ["SharedSpending"]

NANO = 10**9

#: KEYS: the budget hash. ARGV: context, amount, per-context cap, total cap (caps -1 if none).
_RESERVE = """
local amount = tonumber(ARGV[2])
local function used(suffix)
  return tonumber(redis.call('HGET', KEYS[1], 'spent' .. suffix) or '0')
       + tonumber(redis.call('HGET', KEYS[1], 'reserved' .. suffix) or '0')
end
local per, total = tonumber(ARGV[3]), tonumber(ARGV[4])
if per >= 0 and used(':' .. ARGV[1]) + amount > per then return 0 end
if total >= 0 and used('') + amount > total then return 0 end
redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[1], amount)
redis.call('HINCRBY', KEYS[1], 'reserved', amount)
return 1
"""

#: KEYS: the budget hash. ARGV: context, reserved amount, actual cost.
_SETTLE = """
redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[1], -tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[2]))
redis.call('HINCRBY', KEYS[1], 'spent:' .. ARGV[1], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'spent', ARGV[3])
return 1
"""


def _nanos(usd: float, *, up: bool) -> int:
    exact = Fraction(usd) * NANO
    return math.ceil(exact) if up else round(exact)


class SharedSpending:
    """What every router sharing ``key`` has spent and reserved. Thread-safe."""

    def __init__(self, budget: Budget, client: redis.Redis, key: str) -> None:
        self.budget = budget
        self._client = client
        self._key = key
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._caps = [
            -1 if cap is None else _nanos(cap, up=False)
            for cap in (budget.per_context, budget.total)
        ]
        # Held by the route loop across "what fits? select, reserve" like Spending's; across
        # replicas the reservation itself is the atomic step (the loop chooses again if another
        # replica took the money in between).
        self._lock = threading.RLock()

    def transaction(self) -> threading.RLock:
        return self._lock

    def remaining(self, context: str) -> float:
        """What the next call in ``context`` may still cost (inf without a cap)."""
        fields = [f"spent:{context}", f"reserved:{context}", "spent", "reserved"]
        values: Any = self._client.hmget(self._key, fields)
        used = [int(v or 0) for v in values]
        left: list[float] = [math.inf]
        per, total = self._caps
        # One nano-dollar less than exact: whatever this says fits, once rounded up to whole
        # nano-dollars, does fit (else the route loop would choose the same model forever).
        if per >= 0:
            left.append((per - used[0] - used[1] - 1) / NANO)
        if total >= 0:
            left.append((total - used[2] - used[3] - 1) / NANO)
        return min(left)

    def reserve(self, context: str, amount: float) -> Reservation | None:
        """Reserve ``amount`` if it fits every cap, atomically across replicas; else None."""
        nanos = _nanos(amount, up=True)
        if not self._reserve(keys=[self._key], args=[context, nanos, *self._caps]):
            return None
        return Reservation(context, Fraction(nanos, NANO))

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Replace a reservation by the actual ``cost`` of the call."""
        reserved = int(reservation.amount * NANO)
        self._settle(keys=[self._key], args=[reservation.context, reserved, _nanos(cost, up=False)])

    def spent(self, context: str | None = None) -> Fraction:
        """Spending of ``context``, or of every router sharing the budget, to the nano-dollar."""
        field = "spent" if context is None else f"spent:{context}"
        value: Any = self._client.hget(self._key, field)
        return Fraction(int(value or 0), NANO)
