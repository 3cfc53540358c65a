"""A router naming ``shared = {url, name}`` holds its budget in Redis (a real redis-server), so
several gateway processes never overspend one cap between them."""

from __future__ import annotations

import signal
from fractions import Fraction

import httpx

from gateway_servers import KEY, Serve, metric, shared_budget_config
from redis_servers import RedisServer, wait_for

#: Each answer of the local upstream reports 5 completion tokens; at 1 USD per 1M output
#: tokens, no input price and max_tokens = 5, a call's worst-case cost is its actual cost.
CALL_USD = Fraction(5, 10**6)
#: Room for three calls and a half: three fit, the fourth does not, in any one process alone
#: as well as across all of them.
CAP_USD = Fraction(35, 2 * 10**6)


def test_two_gateways_share_one_budget(
    serve: Serve, upstream: str, redis_server: RedisServer
) -> None:
    """Two gateway processes, requests alternating between them: three calls fit the cap in
    all, so the fourth is refused by both (each alone would have admitted three)."""
    text = shared_budget_config(upstream, redis_server.url, float(CAP_USD))
    gateways = [serve(text), serve(text)]
    statuses = []
    for i in range(6):
        response = httpx.post(
            f"{gateways[i % 2].url}/v1/chat/completions",
            json={"model": "capped", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "budget_exceeded"
    assert statuses == [200, 200, 200, 429, 429, 429]
    for gateway in gateways:  # each reports what all spent
        spent = metric(gateway, "pickllm_budget_spent_usd", router="capped")
        assert spent == float(3 * CALL_USD) <= CAP_USD


def test_a_paused_redis_gives_503s_and_the_sweeper_lives_on(
    serve: Serve, upstream: str, redis_server: RedisServer
) -> None:
    """Redis paused (SIGSTOP) for longer than the threads' timeouts: a budgeted request is
    refused with a 503 naming the budget (never a 500 with a redis exception), the shared-state
    gauges go to disconnected and back, which only the sweeper refreshes: it survived."""
    # Decisions expire one second after their answer: only the sweeper expires them.
    text = shared_budget_config(upstream, redis_server.url, float(CAP_USD)).replace(
        'name = "capped" }', 'name = "capped" }\nfeedback_timeout = 1.0'
    )
    gateway = serve(text)

    def expired() -> float:
        return metric(gateway, "pickllm_feedback_settled_total", router="capped", outcome="expired")

    def post() -> httpx.Response:
        return httpx.post(
            f"{gateway.url}/v1/chat/completions",
            json={"model": "capped", "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )

    def connected() -> float:
        return metric(gateway, "pickllm_shared_connected", router="capped")

    assert post().status_code == 200
    wait_for(lambda: connected() == 1.0)
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        response = post()
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "budget_unavailable"
        wait_for(lambda: connected() == 0.0)
        wait_for(lambda: expired() == 1.0)  # the sweeper ran through the outage
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    wait_for(lambda: connected() == 1.0)
    assert post().status_code == 200
    wait_for(lambda: expired() == 2.0)  # and after it
