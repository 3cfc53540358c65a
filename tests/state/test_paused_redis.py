"""A paused Redis (SIGSTOP: connections open, nothing answered) never holds a caller longer than
the timeout it was promised: sync(timeout=), shared_status(), close() and the shared budget
(issue 21, items 3 and 4). The bounds asserted are the promised timeouts plus a generous
margin, never measurements."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from fractions import Fraction

import pytest

from pickllm import Budget, BudgetUnavailable, RedisState, Router
from pickllm.state import SyncTimeoutError
from redis_servers import RedisServer, wait_for

MODELS = ["a", "b"]
#: Scheduling slack on a busy machine, on top of each promised timeout (seconds).
MARGIN = 1.5


def drive(router: Router, n: int) -> None:
    for _ in range(n):
        router.feedback(router.select("x"), accuracy=0.5)


class Paused:
    """SIGSTOP the server on entry, SIGCONT on exit."""

    def __init__(self, server: RedisServer) -> None:
        assert server.process is not None
        self.process = server.process

    def __enter__(self) -> None:
        self.process.send_signal(signal.SIGSTOP)

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGCONT)


def elapsed(call: object, *args: object, **kwargs: object) -> float:
    start = time.monotonic()
    assert callable(call)
    call(*args, **kwargs)
    return time.monotonic() - start


@pytest.fixture
def state(redis_server: RedisServer) -> RedisState:
    return RedisState(url=redis_server.url, name="p", reconnect_seconds=0.02, timeout_seconds=1.0)


@pytest.fixture
def router(state: RedisState) -> Iterator[Router]:
    router = Router(MODELS, seed=1, shared=state)
    drive(router, 10)
    router.sync(timeout=30)
    yield router
    router.close()


def test_sync_and_status_return_in_time_while_redis_is_paused(
    redis_server: RedisServer, router: Router
) -> None:
    with Paused(redis_server):
        for queued in (0, 5):  # nothing to publish, then events waiting
            drive(router, queued)
            start = time.monotonic()
            with pytest.raises(SyncTimeoutError):
                router.sync(timeout=1.0)
            assert time.monotonic() - start < 1.0 + MARGIN
            assert elapsed(router.shared_status) < MARGIN
        # The threads notice within their socket timeout and say so.
        wait_for(lambda: not router.shared_status().connected, timeout=30)
        status = router.shared_status()
        assert (status.lag, status.buffered) == (None, 5)
        assert "Timeout" in (status.last_error or "")
    router.sync(timeout=30)
    status = router.shared_status()
    assert (status.connected, status.buffered, status.applied) == (True, 0, 15)


def test_close_returns_in_time_while_redis_is_paused(
    redis_server: RedisServer, state: RedisState
) -> None:
    router = Router(MODELS, seed=1, shared=state)
    router.sync(timeout=30)
    with Paused(redis_server):
        drive(router, 5)
        assert elapsed(router.close) < 5.0 + MARGIN  # Replica.close's default timeout


def test_a_shared_budget_fails_closed_in_time(redis_server: RedisServer, state: RedisState) -> None:
    # A short lease: the reservation that timed out (but that Redis made once resumed) is
    # released at the next renewal, every third of it.
    state = state.model_copy(update={"lease_seconds": 1.5})
    router = Router(MODELS, seed=1, shared=state)
    assert router._shared is not None
    spending = router._shared.spending(Budget(total=1.0))
    held = spending.reserve("x", 0.25)
    assert held is not None
    with Paused(redis_server):
        start = time.monotonic()
        with pytest.raises(BudgetUnavailable, match="did not answer"):
            spending.reserve("x", 0.1)
        with pytest.raises(BudgetUnavailable):
            spending.remaining("x")
        assert time.monotonic() - start < 2 * 0.25 + MARGIN  # budget_timeout_seconds each
        spending.settle(held, 0.2)  # kept, not raised: sent again once Redis answers
        with pytest.raises(BudgetUnavailable):
            spending.spent()
    # The applier thread sends the kept settlement once Redis answers again.
    wait_for(lambda: spending.client.hget("pickllm:p:budget", "spent") == b"200000000")
    wait_for(lambda: spending.client.hget("pickllm:p:budget", "reserved") == b"0")
    assert spending.spent() == Fraction(1, 5)
    router.close()


def test_a_shared_budget_fails_open_within_its_allowance(
    redis_server: RedisServer, state: RedisState
) -> None:
    state = state.model_copy(update={"budget_outage": "fail_open", "outage_allowance": 0.5})
    with Router(MODELS, seed=1, shared=state) as router:
        assert router._shared is not None
        spending = router._shared.spending(Budget(total=10.0))
        with Paused(redis_server):
            assert spending.remaining("x") == pytest.approx(0.5)
            first = spending.reserve("x", 0.3)
            assert first is not None
            assert first.local
            assert spending.reserve("x", 0.3) is None, "beyond the allowance"
            spending.settle(first, 0.1)  # the allowance now holds the cost, not the bound
            second = spending.reserve("x", 0.3)
            assert second is not None
            spending.settle(second, 0.3)
            assert spending.reserve("x", 0.2) is None
        wait_for(lambda: spending.client.hget("pickllm:p:budget", "spent") == b"400000000")
        assert spending.spent("x") == Fraction(2, 5)
