"""Budgets held across replicas: reservations and spending live in Redis, updated atomically.

The same interface as :class:`pickllm.budget.Spending`, chosen by ``Router(..., shared=...)``.
Amounts are kept as whole nano-dollars (integers, exact): a reservation is rounded up and a
cost to the nearest, so a cost within its reservation never exceeds it. Each reservation is
checked against the caps and added by one Lua script, so replicas can never jointly overspend.

Reservations carry a lease: each replica's are also kept under its own key and it is listed
with an expiry (``lease_seconds``) that its applier thread renews. A replica that dies stops
renewing; the next reservation by anyone releases what it held. A reservation whose reply was
lost (a timeout) but that Redis made after all is released at the next renewal (every third
of the lease): each renewal names the replica's live reservations.

Redis is on the calling path here (before each routed call), so every exchange has a short
timeout (``budget_timeout_seconds``) and an outage follows ``RedisState.budget_outage``: fail
closed with :class:`~pickllm.budget.BudgetUnavailable`, or fail open within a local allowance
that is added to the shared spending once Redis is back. A settlement that cannot reach Redis
is kept and sent again by the applier thread: the money is never lost (a settlement whose reply
was lost after Redis applied it may be counted twice: spending is overstated, never understated).

Nothing waits on Redis on an event loop. ``aroute()`` and the gateway call the async twins
(``aremaining``, ``areserve``, ``aspent``: the same scripts and keys through ``redis.asyncio``,
one client per event loop), and a settlement made on an event loop (``settle`` is called from
synchronous bookkeeping) is queued and sent by :meth:`SharedSpending.flush`, which the async
callers await, or else by the applier thread. A loop's connections are held while a
:meth:`SharedSpending.session` is open on it (an ``aroute()`` call, a gateway's life) and
released when the last one closes, so no connection outlives its loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import anyio
import redis
import redis.asyncio

from pickllm.budget import Budget, BudgetUnavailable, Reservation

if TYPE_CHECKING:
    from pickllm.state.config import RedisState
    from pickllm.state.health import Health

__all__ = ["SharedSpending"]

NANO = 10**9

#: Release what expired holders reserved. KEYS: budget hash, holders (a sorted set of lease
#: expiries); each holder's reservations are the fields of ``<holders>:<holder>``, by id, with
#: values ``<amount>|<context>``. A prefix of the scripts below (each runs atomically).
_REAP = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local function release(value)
  local bar = string.find(value, '|', 1, true)
  local amount = tonumber(string.sub(value, 1, bar - 1))
  redis.call('HINCRBY', KEYS[1], 'reserved:' .. string.sub(value, bar + 1), 0 - amount)
  redis.call('HINCRBY', KEYS[1], 'reserved', 0 - amount)
end
for _, holder in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now_ms)) do
  for _, value in ipairs(redis.call('HVALS', KEYS[2] .. ':' .. holder)) do release(value) end
  redis.call('DEL', KEYS[2] .. ':' .. holder)
  redis.call('ZREM', KEYS[2], holder)
end
"""

#: KEYS: budget hash, holders. ARGV: context, amount, per-context cap, total cap (-1 if none),
#: holder, lease ms, reservation id.
_RESERVE = (
    _REAP
    + """
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
redis.call('HSET', KEYS[2] .. ':' .. ARGV[5], ARGV[7], ARGV[2] .. '|' .. ARGV[1])
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[6]), ARGV[5])
return 1
"""
)

#: KEYS: budget hash, holders. ARGV: context, actual cost, holder, reservation id ('' for
#: none). A reservation released already (its holder's lease expired) is not released again.
_SETTLE = (
    _REAP
    + """
if ARGV[4] ~= '' then
  local mine = KEYS[2] .. ':' .. ARGV[3]
  local value = redis.call('HGET', mine, ARGV[4])
  if value then
    release(value)
    redis.call('HDEL', mine, ARGV[4])
  end
end
if tonumber(ARGV[2]) ~= 0 then
  redis.call('HINCRBY', KEYS[1], 'spent:' .. ARGV[1], ARGV[2])
  redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
end
return 1
"""
)

#: KEYS: budget hash, holders. ARGV: holder, lease ms, the last reservation id issued, then
#: the ids of the holder's live reservations. Extends a listed holder's lease and releases its
#: other reservations up to that id: those a reserve that timed out made after all (the
#: command reached a paused Redis, say). Later ids were issued after the list was taken.
_RENEW = (
    _REAP
    + """
local live = {}
for i = 4, #ARGV do live[ARGV[i]] = true end
local mine = KEYS[2] .. ':' .. ARGV[1]
local held = redis.call('HGETALL', mine)
for i = 1, #held, 2 do
  if not live[held[i]] and tonumber(held[i]) <= tonumber(ARGV[3]) then
    release(held[i + 1])
    redis.call('HDEL', mine, held[i])
  end
end
redis.call('ZADD', KEYS[2], 'XX', now_ms + tonumber(ARGV[2]), ARGV[1])
return 1
"""
)


def _nanos(usd: float, *, up: bool) -> int:
    exact = Fraction(usd) * NANO
    return math.ceil(exact) if up else round(exact)


def _on_event_loop() -> bool:
    """Whether this thread runs an event loop (where nothing may wait on Redis)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


#: A settlement to send: (context, cost nanos, reservation id or "").
Unsettled = tuple[str, int, str]


@dataclass
class _AsyncLink:
    """The async client of one event loop, the scripts registered on it, and how many
    sessions use it."""

    client: redis.asyncio.Redis
    reserve: Any
    settle: Any
    sessions: int = 0


class SharedSpending:
    """What every router sharing ``key`` has spent and reserved. Thread-safe."""

    def __init__(
        self, budget: Budget, config: RedisState, key: str, holder: str, health: Health
    ) -> None:
        self.budget = budget
        self.config = config
        self._key = key
        self._keys = [key, f"{key}:holders"]
        self._holder = holder
        self._health = health
        self._lease_ms = int(config.lease_seconds * 1000)
        timeout = config.budget_timeout_seconds
        # Waiting for a free connection is local contention, not Redis: the longer timeout.
        self.client = config._client(timeout, config.timeout_seconds)
        self._reserve = self.client.register_script(_RESERVE)
        self._settle = self.client.register_script(_SETTLE)
        self._renew = self.client.register_script(_RENEW)
        self._links: dict[asyncio.AbstractEventLoop, _AsyncLink] = {}
        self._caps = [
            -1 if cap is None else _nanos(cap, up=False)
            for cap in (budget.per_context, budget.total)
        ]
        # Held by the sync route loop across "what fits? select, reserve" like Spending's;
        # across replicas the reservation itself is the atomic step (the loop chooses again if
        # another replica took the money in between), so the async path goes without it.
        self._transaction = threading.RLock()
        # Guards the fields below; never held across an exchange with Redis.
        self._lock = threading.Lock()
        # Settlements to send (by `flush` or the applier thread's `renew`), and with fail_open
        # what was spent locally while Redis was unavailable, in order; those being sent.
        self._unsettled: list[Unsettled] = []
        self._sending: list[Unsettled] = []
        self._reservations = 0
        self._live: set[str] = set()  # ids of reservations made and not settled yet
        self._outage_nanos = 0  # reserved or spent under the outage allowance
        self._allowance = _nanos(config.outage_allowance, up=False)
        self._renewed_at = -math.inf

    def _forked(self, holder: str) -> None:
        """In a child after ``fork()``: hold as ``holder``; the reservations and settlements
        kept are the parent's."""
        self._holder = holder
        self._transaction = threading.RLock()
        self._lock = threading.Lock()
        self._live = set()
        self._unsettled = []
        self._sending = []
        self._outage_nanos = 0
        self._renewed_at = -math.inf
        self._links = {}

    def transaction(self) -> threading.RLock:
        return self._transaction

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[_AsyncLink]:
        """The running event loop's async client, held while the block runs: made by the first
        session open on the loop, closed when the last one ends (sessions nest)."""
        loop = asyncio.get_running_loop()
        link = self._links.get(loop)
        if link is None:
            client = self.config._async_client(
                self.config.budget_timeout_seconds, self.config.timeout_seconds
            )
            reserve, settle = client.register_script(_RESERVE), client.register_script(_SETTLE)
            link = self._links[loop] = _AsyncLink(client, reserve, settle)
        link.sessions += 1
        try:
            yield link
        finally:
            link.sessions -= 1
            if link.sessions == 0:
                del self._links[loop]
                with anyio.CancelScope(shield=True):  # closed even when cancelled
                    await link.client.aclose(close_connection_pool=True)
                    manager = getattr(link.client.connection_pool, "sentinel_manager", None)
                    for sentinel in [] if manager is None else manager.sentinels:
                        await sentinel.aclose()  # the clients asking the Sentinels

    def _unavailable(self, doing: str, error: redis.RedisError) -> BudgetUnavailable:
        self._health.failed(f"shared budget: {doing}", error)
        return BudgetUnavailable(
            f"shared budget unavailable: Redis did not answer {doing} within "
            f"{self.config.budget_timeout_seconds} s ({self._health.redact(str(error))}); "
            f"budget_outage={self.config.budget_outage!r}"
        )

    def _fail_open(self) -> bool:
        return self.config.budget_outage == "fail_open"

    # ==================== What is left ====================

    def remaining(self, context: str) -> float:
        """What the next call in ``context`` may still cost (inf without a cap)."""
        try:
            values = self.client.hmget(self._key, self._remaining_fields(context))
        except redis.RedisError as error:
            return self._remaining_in_outage(error)
        return self._left(values)

    async def aremaining(self, context: str) -> float:
        """``remaining`` without blocking the event loop."""
        try:
            async with self.session() as link:
                values = await link.client.hmget(self._key, self._remaining_fields(context))
        except redis.RedisError as error:
            return self._remaining_in_outage(error)
        return self._left(values)

    @staticmethod
    def _remaining_fields(context: str) -> list[str]:
        return [f"spent:{context}", f"reserved:{context}", "spent", "reserved"]

    def _remaining_in_outage(self, error: redis.RedisError) -> float:
        unavailable = self._unavailable("with the budget left", error)
        if not self._fail_open():
            raise unavailable from None
        with self._lock:
            return (self._allowance - self._outage_nanos) / NANO

    def _left(self, values: Any) -> float:
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

    # ==================== Reserving ====================

    def reserve(self, context: str, amount: float) -> Reservation | None:
        """Reserve ``amount`` if it fits every cap, atomically across replicas; else None."""
        nanos = _nanos(amount, up=True)
        if nanos == 0:
            return Reservation(context, Fraction(0))  # a free call: nothing to hold
        rid = self._next_id()
        try:
            made = self._reserve(keys=self._keys, args=self._reserve_args(context, nanos, rid))
        except redis.RedisError as error:
            return self._reserve_in_outage(context, nanos, rid, error)
        return self._reserved(context, nanos, rid, made)

    async def areserve(self, context: str, amount: float) -> Reservation | None:
        """``reserve`` without blocking the event loop."""
        nanos = _nanos(amount, up=True)
        if nanos == 0:
            return Reservation(context, Fraction(0))
        rid = self._next_id()
        try:
            args = self._reserve_args(context, nanos, rid)
            async with self.session() as link:
                made = await link.reserve(keys=self._keys, args=args)
        except redis.RedisError as error:
            return self._reserve_in_outage(context, nanos, rid, error)
        except BaseException:  # cancelled: if Redis made it after all, `renew` releases it
            self._live.discard(rid)
            raise
        return self._reserved(context, nanos, rid, made)

    def _next_id(self) -> str:
        with self._lock:
            self._reservations += 1
            rid = str(self._reservations)
            self._live.add(rid)  # before it exists: `renew` must not release it meanwhile
        return rid

    def _reserve_args(self, context: str, nanos: int, rid: str) -> list[str | int]:
        return [context, nanos, *self._caps, self._holder, self._lease_ms, rid]

    def _reserved(self, context: str, nanos: int, rid: str, made: Any) -> Reservation | None:
        if not made:
            self._live.discard(rid)
            return None
        return Reservation(context, Fraction(nanos, NANO), id=rid)

    def _reserve_in_outage(
        self, context: str, nanos: int, rid: str, error: redis.RedisError
    ) -> Reservation | None:
        self._live.discard(rid)  # if Redis made it after all, `renew` releases it
        unavailable = self._unavailable("with a reservation", error)
        if not self._fail_open():
            raise unavailable from None
        with self._lock:
            if self._outage_nanos + nanos > self._allowance:
                return None
            self._outage_nanos += nanos
        return Reservation(context, Fraction(nanos, NANO), local=True)

    # ==================== Settling ====================

    def settle(self, reservation: Reservation, cost: float) -> None:
        """Replace a reservation by the actual ``cost`` of the call. Never raises for Redis:
        a settlement it does not take is sent again later (see the module docs). On an event
        loop it is only queued, for :meth:`flush` (or the applier thread) to send."""
        actual = _nanos(cost, up=False)
        if reservation.local:
            with self._lock:  # the allowance holds the actual cost now, not the bound
                self._outage_nanos += actual - int(reservation.amount * NANO)
                self._unsettled.append((reservation.context, actual, ""))
            return
        if not reservation.id and actual == 0:
            return  # a free call
        entry = (reservation.context, actual, reservation.id)
        if _on_event_loop():
            with self._lock:
                self._unsettled.append(entry)
            return
        try:
            self._send(self.client, entry)
        except redis.RedisError as error:
            self._health.failed("shared budget: settling (kept, sent again later)", error)
            with self._lock:
                self._unsettled.append(entry)
            return
        # Live until settled: a renewal in between would release it before its cost is added,
        # and another call could take the money twice.
        self._live.discard(reservation.id)

    def _send(self, client: redis.Redis, entry: Unsettled) -> None:
        context, cost, rid = entry
        self._settle(keys=self._keys, args=[context, cost, self._holder, rid], client=client)

    def _take(self, *, outage: bool) -> Unsettled | None:
        """The first settlement waiting, now being sent (by one sender only); with ``outage``
        False, only one of a reservation Redis made (see :meth:`flush`)."""
        with self._lock:
            for index, entry in enumerate(self._unsettled):
                if outage or entry[2]:
                    del self._unsettled[index]
                    self._sending.append(entry)
                    return entry
            return None

    def _sent(self, entry: Unsettled, done: bool) -> None:
        """``entry`` was sent (``done``), or goes back to wait for the next attempt."""
        with self._lock:
            self._sending.remove(entry)
            if done:
                self._live.discard(entry[2])
            else:
                self._unsettled.insert(0, entry)

    async def flush(self) -> None:
        """Send the settlements of reservations made in Redis, without blocking the event
        loop. Never raises for Redis: what it cannot send waits for the applier thread, which
        also sends what was spent under the outage allowance, once a read shows Redis back
        (sent here, during an outage, it could reach Redis twice: once when it resumes and
        executes the request that timed out, once more when sent again)."""
        while (entry := self._take(outage=False)) is not None:
            done = False
            try:
                context, cost, rid = entry
                args = [context, cost, self._holder, rid]
                async with self.session() as link:
                    await link.settle(keys=self._keys, args=args)
                done = True
            except redis.RedisError as error:
                self._health.failed("shared budget: settling (kept, sent again later)", error)
                return
            finally:
                self._sent(entry, done)

    def renew(self, client: redis.Redis) -> None:
        """On the applier thread: extend this replica's lease (every third of it) and send the
        settlements kept during an outage. Raises what Redis raises (the applier counts it)."""
        now = time.monotonic()
        if now - self._renewed_at >= self.config.lease_seconds / 3:
            with self._lock:
                args: list[str | int] = [self._holder, self._lease_ms, self._reservations]
                args += sorted(self._live)
            self._renew(keys=self._keys, args=args, client=client)
            self._renewed_at = now
        while (entry := self._take(outage=True)) is not None:
            done = False
            try:
                self._send(client, entry)
                done = True
            finally:
                self._sent(entry, done)

    # ==================== Spending ====================

    def spent(self, context: str | None = None) -> Fraction:
        """Spending of ``context``, or of every router sharing the budget, to the nano-dollar
        (settlements still to be sent included)."""
        waiting = self._waiting(context)  # first: a settlement sent meanwhile counts twice
        try:
            value: Any = self.client.hget(self._key, self._spent_field(context))
        except redis.RedisError as error:
            raise self._unavailable("with the spending", error) from None
        return Fraction(int(value or 0) + waiting, NANO)

    async def aspent(self, context: str | None = None) -> Fraction:
        """``spent`` without blocking the event loop."""
        waiting = self._waiting(context)
        try:
            async with self.session() as link:
                value: Any = await link.client.hget(self._key, self._spent_field(context))
        except redis.RedisError as error:
            raise self._unavailable("with the spending", error) from None
        return Fraction(int(value or 0) + waiting, NANO)

    @staticmethod
    def _spent_field(context: str | None) -> str:
        return "spent" if context is None else f"spent:{context}"

    def _waiting(self, context: str | None) -> int:
        """Settlements not in Redis yet (read before Redis is: one sent in between is counted
        twice, overstating for a moment, never understating)."""
        with self._lock:
            entries: Sequence[Unsettled] = [*self._unsettled, *self._sending]
        return sum(cost for ctx, cost, _ in entries if context in (None, ctx))

    # ==================== Closing ====================

    def close(self) -> None:
        """Release the sync client (each async client is released by its last session)."""
        self.client.close()
        self.client.connection_pool.disconnect()  # a pool given to Redis() is not closed
