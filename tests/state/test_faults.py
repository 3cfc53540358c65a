"""Redis errors other than "unreachable" never end a replica's threads: each is counted, kept
as the last error and retried until it clears (issue 21, item 5). Real redis-server, faults
made with Redis's own commands."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from pickllm import RedisState, Router
from pickllm.state import SyncTimeoutError
from redis_servers import RedisServer, wait_for

MODELS = ["a", "b", "c"]


def drive(router: Router, n: int, context: str = "x") -> None:
    for _ in range(n):
        decision = router.select(context)
        router.feedback(decision, accuracy=0.9 if decision.model == "a" else 0.2)


def total(router: Router) -> int:
    return sum(sum(router.feedback_counts(c).values()) for c in router.contexts())


def threads_alive(router: Router) -> bool:
    assert router._shared is not None
    return all(thread.is_alive() for thread in router._shared._threads)


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def state(redis_server: RedisServer) -> RedisState:
    return RedisState(url=redis_server.url, name="f", reconnect_seconds=0.02)


def test_out_of_memory_is_retried_until_redis_has_room(
    state: RedisState, client: redis.Redis
) -> None:
    with Router(MODELS, seed=1, shared=state) as one, Router(MODELS, seed=2, shared=state) as two:
        drive(one, 10)
        one.sync(timeout=30)
        client.config_set("maxmemory", "1")  # every write now fails: OOM
        drive(one, 100)
        wait_for(lambda: "maxmemory" in (one.shared_status().last_error or ""))
        with pytest.raises(SyncTimeoutError, match="maxmemory"):
            one.sync(timeout=0.5)
        status = one.shared_status()
        assert (status.connected, status.buffered, status.dropped) == (False, 100, 0)
        assert status.errors >= 1
        assert threads_alive(one)
        client.config_set("maxmemory", "0")
        for router in (one, two, one, two):
            router.sync(timeout=30)
        assert total(one) == total(two) == 110
        assert one._core.learned() == two._core.learned()
        assert one.shared_status().connected
        assert threads_alive(one)


def test_a_key_of_the_wrong_type_is_retried_until_removed(
    state: RedisState, client: redis.Redis
) -> None:
    with Router(MODELS, seed=1, shared=state) as one:
        drive(one, 10)
        one.sync(timeout=30)
        client.delete("pickllm:f:events")
        client.set("pickllm:f:events", "not a stream")
        drive(one, 10)
        wait_for(lambda: "WRONGTYPE" in (one.shared_status().last_error or ""))
        assert threads_alive(one)
        assert not one.shared_status().connected
        client.delete("pickllm:f:events")  # the stream starts again: healed from this replica
        one.sync(timeout=30)
        one.sync(timeout=30)
        assert total(one) == 20
        status = one.shared_status()
        assert status.connected
        assert status.buffered == 0
        assert threads_alive(one)


def test_a_stream_at_its_last_id_then_started_again(state: RedisState, client: redis.Redis) -> None:
    with Router(MODELS, seed=1, shared=state) as one, Router(MODELS, seed=2, shared=state) as two:
        drive(one, 10)
        one.sync(timeout=30)
        top = f"{2**64 - 1}-{2**64 - 1}"
        client.xadd("pickllm:f:events", {"e": b"{}"}, id=top)  # a clock far in the future
        drive(one, 10)
        wait_for(lambda: "exhausted" in (one.shared_status().last_error or ""))
        assert threads_alive(one)
        epoch = one.shared_status().epoch
        # The operator removes the stream: its ids start again below what the replicas read.
        client.delete("pickllm:f:events")
        for router in (one, two, one, two):
            router.sync(timeout=30)
        assert total(one) == total(two) == 20, "re-seeded from a replica's state, not stuck"
        assert one._core.learned() == two._core.learned()
        assert one.shared_status().epoch == two.shared_status().epoch != epoch


def test_an_unreadable_checkpoint_is_reported_and_retried(
    state: RedisState, client: redis.Redis
) -> None:
    with Router(MODELS, seed=1, shared=state) as one:
        drive(one, 10)
        one.sync(timeout=30)
        client.set("pickllm:f:checkpoint", b"\x00 not json")
        client.set("pickllm:f:checkpoint-learned", b"{}")
        with Router(MODELS, seed=2, shared=state) as late:
            with pytest.raises(SyncTimeoutError, match="unreadable checkpoint"):
                late.sync(timeout=1)
            assert threads_alive(late)
            assert late.shared_status().errors >= 1
            client.delete("pickllm:f:checkpoint", "pickllm:f:checkpoint-learned")
            late.sync(timeout=30)
            assert late._core.learned() == one._core.learned()
            assert total(late) == 10


def test_lost_events_are_counted_by_every_replica(state: RedisState, client: redis.Redis) -> None:
    with Router(MODELS, seed=1, shared=state) as one, Router(MODELS, seed=2, shared=state) as two:
        one.sync(timeout=30)
        events = [(seq, "x", "a", 1.0, 0.0, 0.0, 1.0, None) for seq in (1, 2, 5, 6, 9)]
        client.xadd("pickllm:f:events", {"e": json.dumps({"v": 1, "r": "gone", "e": events})})
        for router in (one, two):
            router.sync(timeout=30)
            status = router.shared_status()
            assert (status.applied, status.lost) == (5, 2 + 2)
