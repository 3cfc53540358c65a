"""Redis stopped mid-run and started again: routing goes on, buffered feedback arrives once."""

from __future__ import annotations

from pathlib import Path

from pickllm import RedisState, Router
from redis_servers import RedisServer, wait_for

MODELS = ["a", "b", "c"]


def drive(router: Router, n: int) -> None:
    for i in range(n):
        decision = router.select(f"c{i % 3}")
        router.feedback(decision, accuracy=0.9 if decision.model == "b" else 0.4)


def total(router: Router) -> int:
    return sum(sum(router.feedback_counts(c).values()) for c in router.contexts())


def test_routing_goes_on_and_buffered_events_arrive_once(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, persistent=True)
    state = RedisState(url=server.url, name="outage", reconnect_seconds=0.05)
    one = Router(MODELS, seed=1, shared=state)
    two = Router(MODELS, seed=2, shared=state)
    tiny = Router(MODELS, seed=3, shared=state.model_copy(update={"buffer": 10}))
    try:
        for router, n in ((one, 500), (two, 500), (tiny, 10)):  # the tiny buffer holds 10
            drive(router, n)
            router.sync(timeout=30)
        server.kill()  # SIGKILL: only what it had fsynced (all it acknowledged) survives
        for router in (one, two):
            drive(router, 1000)  # never waits on the missing server
            wait_for(lambda r=router: not r.shared_status().connected)  # noticed by its threads
            status = router.shared_status()
            assert (status.connected, status.lag) == (False, None)
            assert (status.buffered, status.dropped) == (1000, 0)
        drive(tiny, 100)
        status = tiny.shared_status()
        assert (status.buffered, status.dropped) == (10, 90), "overflow is counted, not silent"
        server.start()
        # Twice round: the first puts every router's buffer in Redis, the second applies it all
        # everywhere (sync waits only for events published before it is called).
        for router in (one, two, tiny, one, two, tiny):
            router.sync(timeout=60)
        expected = 2 * 500 + 10 + 2 * 1000 + 10
        for router in (one, two, tiny):
            assert total(router) == expected
            status = router.shared_status()
            assert (status.connected, status.lag, status.buffered) == (True, 0, 0)
        assert one._core.learned() == two._core.learned() == tiny._core.learned()
        assert tiny.shared_status().dropped == 90
    finally:
        for router in (one, two, tiny):
            router.close()
        server.stop()
