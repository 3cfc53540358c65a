"""The gateway never waits on Redis on its event loop (issue 21, item 4): its shared budget
speaks ``redis.asyncio``. The real app runs under uvicorn in a thread of this process, so that
every command a *synchronous* Redis connection sends is recorded with its thread: none may come
from the gateway's loop. With Redis paused (SIGSTOP) a budgeted request waits for it while
``/healthz`` and ``/v1/models`` are answered; proved by the order of events, never by durations.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import httpx
import openai
import pytest
from redis import connection as redis_connection

from gateway_servers import KEY, InProcessGateway, shared_budget_config
from pickllm.state.budget import SharedSpending
from redis_servers import RedisServer

LOOP_THREAD = "gateway-loop"


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the config names, for the gateway in this process."""
    monkeypatch.setenv("PICKLLM_TEST_KEY", KEY)


@pytest.fixture
def sync_senders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The name of the thread of every command a synchronous connection sends."""
    threads: list[str] = []
    original = redis_connection.AbstractConnection.send_packed_command

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(redis_connection.AbstractConnection, "send_packed_command", recorded)
    return threads


def config(upstream: str, redis_url: str, budget_timeout: float) -> str:
    return shared_budget_config(
        upstream, redis_url, 1.0, f", budget_timeout_seconds = {budget_timeout}"
    )


def chat(gateway: InProcessGateway) -> str:
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=300
    ) as client:
        answer = client.chat.completions.create(
            model="capped", messages=[{"role": "user", "content": "hi"}]
        )
        return answer.model


def test_no_sync_redis_command_on_the_gateway_loop(
    upstream: str, redis_server: RedisServer, sync_senders: list[str]
) -> None:
    gateway = InProcessGateway(config(upstream, redis_server.url, 0.25))
    try:
        for _ in range(5):
            chat(gateway)
        # The sweeper's and the scrape's budget reads too.
        text = httpx.get(f"{gateway.url}/metrics").text
        assert 'pickllm_budget_spent_usd{router="capped"} 2.5e-05' in text
    finally:
        gateway.stop()
    assert LOOP_THREAD not in sync_senders
    assert sync_senders, "the replica's own threads do talk to Redis (the probe works)"


def test_a_paused_redis_holds_budgeted_requests_not_the_loop(
    upstream: str,
    redis_server: RedisServer,
    sync_senders: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Budget calls wait for Redis up to a long budget timeout here: a request is waiting on the
    paused Redis while other requests are answered; it completes once Redis is resumed."""
    asking = threading.Event()  # a request is waiting for the budget's Redis
    original = SharedSpending.aremaining

    async def remaining(self: SharedSpending, context: str) -> float:
        asking.set()
        return await original(self, context)

    gateway = InProcessGateway(config(upstream, redis_server.url, 600.0))
    assert redis_server.process is not None
    try:
        chat(gateway)  # connected
        monkeypatch.setattr(SharedSpending, "aremaining", remaining)
        results: list[str] = []
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            waiting = threading.Thread(target=lambda: results.append(chat(gateway)))
            waiting.start()
            assert asking.wait(60)
            # Answered while that request waits on Redis (its budget timeout is 600 s).
            assert httpx.get(f"{gateway.url}/healthz", timeout=60).status_code == 200
            models = httpx.get(
                f"{gateway.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=60
            )
            assert models.status_code == 200
            assert waiting.is_alive(), "still waiting for Redis"
            assert results == []
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        waiting.join(60)
        assert results == ["good"]
    finally:
        gateway.stop()
    assert LOOP_THREAD not in sync_senders
