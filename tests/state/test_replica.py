"""Shared state between routers in one process, against a real redis-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import pickllm
from pickllm import ConfigError, FeedbackError, RedisState, Router, UnknownModelError
from pickllm.state import SharedStateError
from redis_servers import RedisServer

MODELS = ["a", "b", "c"]
#: Accuracy per (context, model): fixed, so every run feeds back the same outcomes.
ACCURACY = {("x", "a"): 0.9, ("x", "b"): 0.2, ("x", "c"): 0.5, ("y", "a"): 0.1}


def encode(replica: str, events: list[Any]) -> bytes:
    """A stream entry written by hand (the core's outbox writes the real ones), so that it can
    hold what no replica would write."""
    return json.dumps({"v": 1, "r": replica, "e": events}).encode()


def drive(router: Router, n: int, contexts: tuple[str, ...] = ("x", "y")) -> None:
    for i in range(n):
        decision = router.select(contexts[i % len(contexts)])
        router.feedback(decision, accuracy=ACCURACY.get((decision.context, decision.model), 0.3))


def sync_all(*routers: Router) -> None:
    """The first round puts every router's feedback in Redis, the second applies it everywhere
    (sync waits only for events published before it is called)."""
    for router in (*routers, *routers):
        router.sync(timeout=60)


def total(router: Router) -> int:
    return sum(sum(router.feedback_counts(c).values()) for c in router.contexts())


@pytest.fixture
def state(redis_server: RedisServer) -> RedisState:
    return RedisState(url=redis_server.url, name="test")


@pytest.fixture
def pair(state: RedisState) -> Iterator[tuple[Router, Router]]:
    one = Router(MODELS, seed=1, shared=state)
    two = Router(MODELS, seed=2, shared=state)
    yield one, two
    one.close()
    two.close()


def test_routers_learn_as_one(pair: tuple[Router, Router]) -> None:
    one, two = pair
    drive(one, 500)
    drive(two, 300, ("y", "z"))
    sync_all(one, two)
    assert one._core.learned() == two._core.learned()
    assert total(one) == total(two) == 800
    status = one.shared_status()
    assert (status.connected, status.lag, status.buffered, status.dropped) == (True, 0, 0, 0)
    assert (status.published, status.applied, status.rejected) == (500, 800, 0)


def test_observe_is_published_and_learned_everywhere(pair: tuple[Router, Router]) -> None:
    one, two = pair
    assert one.observe("imported", "b", accuracy=1.0, probability=0.25) == 1.0
    sync_all(one, two)
    assert two.feedback_counts("imported") == {"a": 0, "b": 1, "c": 0}
    with pytest.raises(UnknownModelError):
        one.observe("imported", "nope", accuracy=1.0)
    with pytest.raises(FeedbackError):
        one.observe("imported", "a", accuracy=1.0, probability=0.0)
    with pytest.raises(FeedbackError):
        one.observe("imported", "a", accuracy=2.0)
    with pytest.raises(pickllm.ArgumentTypeError):
        one.observe("imported", "a", accuracy=1.0, probability="high")  # type: ignore[arg-type]
    assert one.shared_status().published == 1, "rejected observations publish nothing"


def test_bad_feedback_publishes_nothing(pair: tuple[Router, Router]) -> None:
    one, _ = pair
    decision = one.select("x")
    with pytest.raises(FeedbackError):
        one.feedback(decision, accuracy=float("nan"))
    one.feedback(decision, accuracy=1.0)
    with pytest.raises(pickllm.DecisionError):
        one.feedback(decision, accuracy=1.0)
    one.sync(timeout=30)
    assert one.shared_status().published == 1
    assert total(one) == 1


def test_copies_are_applied_once_and_invalid_events_skipped_by_all(
    redis_server: RedisServer, pair: tuple[Router, Router]
) -> None:
    one, two = pair
    client = redis.Redis.from_url(redis_server.url)
    key = "pickllm:test:events"
    first = (1, "x", "a", 1.0, 0.0, 0.0, 1.0, None)
    client.xadd(key, {"e": encode("elsewhere", [first])})
    client.xadd(key, {"e": encode("elsewhere", [first])})  # sent again after a lost reply
    client.xadd(key, {"e": b'{"v": 99}'})  # a newer format: the whole entry is skipped
    bad = [
        (2, "x", "nope", 1.0, 0.0, 0.0, 1.0, None),  # unknown model
        (3, "x", "a", 2.0, 0.0, 0.0, 1.0, None),  # accuracy out of range
        ["4", "x", "a", 1.0, 0.0, 0.0, 1.0, None],  # not a sequence number
        [5, "x"],  # not an event
        (6, "x", "b", 1.0, 0.0, 0.0, 1.0, None),
        (6, "x", "b", 1.0, 0.0, 0.0, 1.0, None),  # a copy within one entry
    ]
    client.xadd(key, {"e": encode("elsewhere", bad)})
    for router in pair:
        router.sync(timeout=30)
        assert router.feedback_counts("x") == {"a": 1, "b": 1, "c": 0}
        status = router.shared_status()
        assert (status.applied, status.rejected) == (2, 5)
    assert one._core.learned() == two._core.learned()
    client.close()


def test_another_configuration_cannot_join(state: RedisState) -> None:
    with Router(MODELS, seed=1, shared=state):
        pass
    with pytest.raises(SharedStateError, match="another configuration"):
        Router([*MODELS, "d"], seed=1, shared=state)
    with pytest.raises(SharedStateError):
        Router(MODELS, seed=1, shared=state, policy=pickllm.QLearning())


def test_checkpoints_bound_the_stream_and_new_routers_start_from_them(
    redis_server: RedisServer,
) -> None:
    state = RedisState(url=redis_server.url, name="test", checkpoint_every=1000)
    with Router(MODELS, seed=1, shared=state) as one:
        for _ in range(10):  # a checkpoint after each round, before the next round is read
            drive(one, 1000)
            one.sync(timeout=60)
        client = redis.Redis.from_url(redis_server.url)
        checkpoint = json.loads(client.get("pickllm:test:checkpoint") or b"{}")
        assert checkpoint["v"] == 2
        assert sum(checkpoint["seen"].values()) >= 9000
        # Trimmed behind the previous checkpoint: the stream lost its beginning.
        first = client.xrange("pickllm:test:events", count=1)[0][1][b"e"]
        assert json.loads(first)["e"][0][0] > 1
        with Router(MODELS, seed=5, shared=state) as late:
            late.sync(timeout=60)
            assert late._core.learned() == one._core.learned()
            assert total(late) == 10_000
            assert late.shared_status().applied < 10_000, "started from the checkpoint"
        client.close()


@pytest.mark.parametrize("checkpoint_every", [100, 50_000])
def test_a_restored_or_loaded_router_rejoins_with_the_shared_state(
    redis_server: RedisServer, tmp_path: Path, checkpoint_every: int
) -> None:
    state = RedisState(url=redis_server.url, name="test", checkpoint_every=checkpoint_every)
    one = Router(MODELS, seed=1, shared=state)
    drive(one, 300)
    one.sync(timeout=60)
    drive(one, 1)  # applied after the checkpoint of the first 300 (if any) is stored
    one.sync(timeout=60)
    client = redis.Redis.from_url(redis_server.url)
    assert client.exists("pickllm:test:checkpoint") == (checkpoint_every == 100)
    client.close()
    worker = Router(MODELS, seed=3)
    drive(worker, 200, ("x", "elsewhere"))  # learned alone, before joining: not shared
    pending = worker.select("x")
    worker.save(tmp_path / "worker.bin")
    with (
        Router.restore(worker.snapshot(), shared=state) as restored,
        Router.load(tmp_path / "worker.bin", shared=state) as loaded,
    ):
        for router in (restored, loaded):
            router.sync(timeout=60)
            assert router._core.learned() == one._core.learned(), "the fleet's state, not its own"
            assert total(router) == 301
            assert router.identity == worker.identity
        # The identity came back with the snapshot: its pending decision is settled here and
        # learned everywhere through the log.
        restored.feedback(pending, accuracy=1.0)
        with pytest.raises(pickllm.DecisionError):
            restored.feedback(pending, accuracy=1.0)
        sync_all(one, restored, loaded)
        assert one._core.learned() == restored._core.learned() == loaded._core.learned()
        assert total(loaded) == 302
    one.close()
    with pytest.raises(pickllm.ArgumentTypeError):
        Router.restore(worker.snapshot(), shared="redis://127.0.0.1")  # type: ignore[arg-type]


def test_needs_shared_state() -> None:
    router = Router(MODELS, seed=1)
    with pytest.raises(ConfigError):
        router.sync()
    with pytest.raises(ConfigError):
        router.shared_status()
    with pytest.raises(pickllm.ArgumentTypeError):
        Router(MODELS, shared="redis://127.0.0.1")  # type: ignore[arg-type]


def test_a_logging_router_settles_locally_and_learns_from_the_log(
    state: RedisState, tmp_path: Path
) -> None:
    with Router(MODELS, seed=1, shared=state, decision_log=tmp_path / "log") as router:
        drive(router, 50)
        router.sync(timeout=30)
        assert total(router) == 50
        assert router.shared_status().published == 50


def test_replicas_that_closed_leave_the_sequence_map(
    redis_server: RedisServer, state: RedisState
) -> None:
    """A replica that closes with everything published retires: the next checkpoint past its
    last entry leaves it out, so the map does not grow by one entry per process ever started."""
    state = state.model_copy(update={"checkpoint_every": 50})
    client = redis.Redis.from_url(redis_server.url)
    with Router(MODELS, seed=1, shared=state) as one:
        gone = []
        for seed in (2, 3):
            with Router(MODELS, seed=seed, shared=state) as short_lived:
                drive(short_lived, 10)
                short_lived.sync(timeout=30)
                assert short_lived._shared is not None
                gone.append(short_lived._shared.id)
        assert sorted(k.decode() for k in client.hkeys("pickllm:test:retired")) == sorted(gone)
        drive(one, 60)  # past the retirements: the next checkpoint leaves them out
        one.sync(timeout=30)
        drive(one, 1)  # applied after that checkpoint was stored
        one.sync(timeout=30)
        checkpoint = json.loads(client.get("pickllm:test:checkpoint") or b"{}")
        assert one._shared is not None
        assert set(checkpoint["seen"]) == {one._shared.id}
        assert client.hlen("pickllm:test:retired") == 0
        with Router(MODELS, seed=5, shared=state) as late:
            late.sync(timeout=30)
            assert late._core.learned() == one._core.learned()
            assert total(late) == total(one) == 81
    client.close()
