"""A Redis that restarts empty loses the log: replicas detect it (the epoch stored with the
configuration is gone), the lease holder re-seeds it from its own state and the others reload
from that, so the fleet reconverges; with AOF nothing is lost and the epoch stays. Real
redis-server processes, SIGKILLed and started again on the same port (issue 21, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from pickllm import RedisState, Router
from redis_servers import RedisServer

MODELS = ["a", "b", "c"]


def drive(router: Router, n: int, contexts: tuple[str, ...]) -> None:
    for i in range(n):
        decision = router.select(contexts[i % len(contexts)])
        router.feedback(decision, accuracy=0.9 if decision.model == "b" else 0.3)


def total(router: Router) -> int:
    return sum(sum(router.feedback_counts(c).values()) for c in router.contexts())


def sync_all(*routers: Router) -> None:
    for router in (*routers, *routers):
        router.sync(timeout=60)


@pytest.mark.parametrize("persistent", [False, True], ids=["empty", "aof"])
def test_a_restarted_redis_loses_nothing_the_replicas_hold(
    tmp_path: Path, persistent: bool
) -> None:
    server = RedisServer(tmp_path, persistent=persistent)
    state = RedisState(url=server.url, name="lost", reconnect_seconds=0.02)
    one = Router(MODELS, seed=1, shared=state)
    two = Router(MODELS, seed=2, shared=state)
    try:
        drive(one, 300, ("x", "y"))
        drive(two, 200, ("y", "z"))
        sync_all(one, two)
        before = one.shared_status().epoch
        assert before is not None
        assert two.shared_status().epoch == before
        server.kill()  # SIGKILL: without AOF the restarted server is empty
        server.start()
        drive(one, 50, ("w",))
        sync_all(one, two)
        with Router(MODELS, seed=3, shared=state) as late:
            late.sync(timeout=60)
            for router in (one, two, late):
                assert total(router) == 550, "acknowledged and applied: kept"
                status = router.shared_status()
                assert (status.connected, status.lag, status.lost) == (True, 0, 0)
            assert one._core.learned() == two._core.learned() == late._core.learned()
            epochs = {r.shared_status().epoch for r in (one, two, late)}
            assert len(epochs) == 1
            (after,) = epochs
            assert (after == before) is persistent, "a new epoch exactly when the log was lost"
            if not persistent:
                # One replica re-seeded the log; both old ones report it.
                reports = [r.shared_status().last_error or "" for r in (one, two)]
                assert any("re-seeded" in r for r in reports)
                assert all("re-seeded" in r or "reset" in r for r in reports)
        client = redis.Redis.from_url(server.url)
        assert client.exists("pickllm:lost:config", "pickllm:lost:checkpoint") == (
            1 if persistent else 2
        ), "a re-seeded log has the re-seeder's checkpoint"
        client.close()
    finally:
        one.close()
        two.close()
        server.stop()


def test_a_router_with_another_configuration_stays_refused_after_a_reset(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path, persistent=False)
    state = RedisState(url=server.url, name="cfg", reconnect_seconds=0.02)
    try:
        with Router(MODELS, seed=1, shared=state) as one:
            drive(one, 20, ("x",))
            one.sync(timeout=60)
            server.kill()
            server.start()
            one.sync(timeout=60)  # re-seeded with its configuration
            with pytest.raises(Exception, match="another configuration"):
                Router([*MODELS, "d"], seed=1, shared=state)
            assert total(one) == 20
    finally:
        server.stop()
