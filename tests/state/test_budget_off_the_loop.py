"""Nothing waits on Redis on an event loop (issue 21, item 4): ``aroute()`` asks a shared budget
through ``redis.asyncio``. Proved without timing: every command a *synchronous* Redis connection
sends is recorded with its thread, and none may come from the thread running the loop; with
Redis paused (SIGSTOP), another task on the loop runs while ``aroute()`` waits for the budget."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.connection

from model_farm import answer, model_farm
from pickllm import (
    Budget,
    BudgetExceeded,
    BudgetUnavailable,
    Model,
    OpenAICompatible,
    RedisState,
    Router,
)
from redis_servers import RedisServer, wait_for

#: 12 prompt tokens at 1,000 USD/M and 5 answer tokens at 2,000 USD/M (the farm's answers).
CALL_NANOS = 12 * 1000 * 1000 + 5 * 2000 * 1000
#: The bound reserved for "2 + 2?": 6 bytes + 16 template tokens at 1,000, 8 tokens at 2,000.
BOUND_NANOS = (6 + 16) * 1000 * 1000 + 8 * 2000 * 1000


@pytest.fixture
def sync_senders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread of every command a synchronous connection sends."""
    threads: list[str] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", recorded)
    return threads


@pytest.fixture
def farm() -> Iterator[Any]:
    with model_farm({"paid": answer("B")}) as farm:
        yield farm


def router_of(farm: Any, state: RedisState) -> Router:
    backend = OpenAICompatible(base_url=farm.url, api_key="sk-test", timeout=5.0)
    model = Model("paid", backend=backend, input_price=1000.0, output_price=2000.0, max_tokens=8)
    return Router([model], seed=1, shared=state, budget=Budget(total=1.0))


def spent_in_redis(server: RedisServer, name: str) -> tuple[int, int]:
    client = redis.Redis.from_url(server.url)
    try:
        values = client.hmget(f"pickllm:{name}:budget", ["spent", "reserved"])
        return int(values[0] or 0), int(values[1] or 0)
    finally:
        client.close()


def test_aroute_never_sends_a_sync_redis_command_on_the_loop(
    redis_server: RedisServer, farm: Any, sync_senders: list[str]
) -> None:
    state = RedisState(url=redis_server.url, name="loop")
    router = router_of(farm, state)

    async def main() -> tuple[str, list[str]]:
        loop_thread = threading.current_thread().name
        sync_senders.clear()  # from here on (the router was made before the loop)
        for i in range(5):
            await router.aroute("2 + 2?", context=f"c{i % 2}")
        await router.aclose()
        return loop_thread, [t for t in sync_senders if t == loop_thread]

    loop_thread, on_loop = asyncio.run(main())
    assert on_loop == [], f"synchronous Redis commands on the loop thread {loop_thread!r}"
    assert sync_senders, "the replica's own threads do talk to Redis (the probe works)"
    # Settled through the async client before each aroute() returned: nothing left reserved.
    assert spent_in_redis(redis_server, "loop") == (5 * CALL_NANOS, 0)


def test_a_paused_redis_fails_aroute_closed_while_the_loop_runs(
    redis_server: RedisServer, farm: Any, sync_senders: list[str]
) -> None:
    state = RedisState(url=redis_server.url, name="closed", reconnect_seconds=0.02)
    router = router_of(farm, state)
    assert redis_server.process is not None

    async def main() -> tuple[list[str], int]:
        sync_senders.clear()
        await router.aroute("2 + 2?")  # connected
        waiting = asyncio.Event()
        ticks = 0

        async def ticker() -> None:  # runs only if the loop is free while aroute() waits
            nonlocal ticks
            await waiting.wait()
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            waiting.set()
            with pytest.raises(BudgetUnavailable, match="budget_outage='fail_closed'"):
                await router.aroute("2 + 2?")
            ticked = ticks
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
            task.cancel()
        await router.aroute("2 + 2?")  # and after it
        await router.aclose()
        return [t for t in sync_senders if t == threading.current_thread().name], ticked

    on_loop, ticked = asyncio.run(main())
    assert on_loop == []
    assert ticked > 0, "the loop ran another task while aroute() waited for Redis"
    assert farm.calls["paid"] == 2, "nothing was called while the budget was unavailable"
    wait_for(lambda: spent_in_redis(redis_server, "closed") == (2 * CALL_NANOS, 0))


def test_a_paused_redis_fails_aroute_open_within_the_allowance(
    redis_server: RedisServer, farm: Any, sync_senders: list[str]
) -> None:
    state = RedisState(
        url=redis_server.url,
        name="open",
        reconnect_seconds=0.02,
        budget_outage="fail_open",
        # A reservation that timed out but that Redis makes once resumed is released at the
        # next renewal, every third of the lease.
        lease_seconds=1.5,
        # Room for one call's bound; then for its cost and another bound no more.
        outage_allowance=(BOUND_NANOS + CALL_NANOS) / 10**9 - 0.001,
    )
    router = router_of(farm, state)
    assert redis_server.process is not None

    async def main() -> list[str]:
        sync_senders.clear()
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            result = await router.aroute("2 + 2?")  # spent locally, within the allowance
            assert result.model == "paid"
            with pytest.raises(BudgetExceeded, match="USD left"):
                await router.aroute("2 + 2?")  # the allowance is used up
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        await router.aclose()
        return [t for t in sync_senders if t == threading.current_thread().name]

    assert asyncio.run(main()) == []
    assert farm.calls["paid"] == 1
    # The applier thread adds what was spent locally once Redis answers again.
    wait_for(lambda: spent_in_redis(redis_server, "open") == (CALL_NANOS, 0))
