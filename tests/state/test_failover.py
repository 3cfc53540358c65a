"""A Redis primary with a replica and a Sentinel: the primary is SIGKILLed, Sentinel promotes
the replica and the routers (given only the Sentinel) carry on with it: everything acknowledged
and replicated is kept, replicas reconverge, the budget holds (issue 21)."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import redis

from pickllm import Budget, RedisState, Router
from redis_servers import RedisServer, SentinelServer, wait_for

MODELS = ["a", "b", "c"]


def drive(router: Router, n: int, context: str) -> None:
    for _ in range(n):
        decision = router.select(context)
        router.feedback(decision, accuracy=0.9 if decision.model == "a" else 0.3)


def promoted(client: redis.Redis) -> bool:
    """Whether the replica has become the primary. Sentinel closes the connections of every
    normal client of an instance it reconfigures (``CLIENT KILL TYPE normal``), this probe's
    too, so a closed connection means: ask again."""
    try:
        return bool(client.info("replication")["role"] == "master")
    except redis.ConnectionError:
        return False


def total(router: Router) -> int:
    return sum(sum(router.feedback_counts(c).values()) for c in router.contexts())


def test_the_fleet_follows_a_failover(tmp_path: Path) -> None:
    primary = RedisServer(tmp_path / "primary", persistent=True)
    replica = RedisServer(tmp_path / "replica", persistent=True, replica_of=primary.port)
    to_replica = redis.Redis.from_url(replica.url)
    wait_for(lambda: to_replica.info("replication")["master_link_status"] == "up")
    sentinel = SentinelServer(tmp_path / "sentinel", primary.port)
    state = RedisState(
        url="redis:///0",
        name="ha",
        sentinels=(f"127.0.0.1:{sentinel.port}",),
        reconnect_seconds=0.05,
        timeout_seconds=1.0,
    )
    one = Router(MODELS, seed=1, shared=state)
    two = Router(MODELS, seed=2, shared=state)
    try:
        assert one._shared is not None
        spending = one._shared.spending(Budget(total=1.0))
        held = spending.reserve("x", 0.25)
        assert held is not None
        spending.settle(held, 0.125)
        drive(one, 200, "x")
        drive(two, 100, "y")
        for router in (one, two, one, two):
            router.sync(timeout=60)
        epoch = one.shared_status().epoch
        to_primary = redis.Redis.from_url(primary.url)
        assert to_primary.wait(1, 10_000) == 1, "replicated before the primary dies"
        to_primary.close()
        primary.kill()
        # Sentinel promotes the replica; the routers find it through Sentinel.
        wait_for(lambda: promoted(to_replica), timeout=60)
        drive(one, 50, "z")
        drive(two, 50, "z")
        for router in (one, two, one, two):
            router.sync(timeout=60)
        for router in (one, two):
            assert total(router) == 400
            status = router.shared_status()
            assert (status.connected, status.lost, status.epoch) == (True, 0, epoch)
        assert one._core.learned() == two._core.learned()
        assert spending.spent() == Fraction(1, 8), "the budget's spending survived"
        assert spending.reserve("x", 0.9) is None, "and its cap holds (0.875 left)"
        assert spending.reserve("x", 0.8) is not None

        async def on_a_loop() -> tuple[Fraction, bool]:  # the async client finds it too
            async with spending.session():
                return await spending.aspent(), await spending.areserve("x", 0.05) is not None

        assert asyncio.run(on_a_loop()) == (Fraction(1, 8), True)
    finally:
        one.close()
        two.close()
        to_replica.close()
        sentinel.stop()
        replica.stop()
        primary.stop()
