"""``GET /readyz`` reflects shared state (issue 21; the rule is in docs/gateway.md, "Readiness"):
a real redis-server paused with SIGSTOP makes a `pickllm serve` worker not ready, for each
reason the rule gives, and resuming it (SIGCONT) makes it ready again; each change is logged.
Every wait is on a condition, with a generous ceiling; no duration is asserted."""

from __future__ import annotations

import signal
from typing import Any

import httpx

from gateway_servers import KEY, Process, Serve, metric
from pickllm.gateway.readiness import Readiness
from pickllm.state import SharedStatus
from redis_servers import RedisServer, wait_for

HEADERS = {"Authorization": f"Bearer {KEY}"}


def config(upstream: str, redis_url: str) -> str:
    # "learn": no budget, a one-event buffer; "capped": a budget that fails closed.
    return f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]
ready_grace = 1.0

[models.good]
base_url = "{upstream}"
output_price = 1.0
max_tokens = 5

[routers.learn]
models = ["good"]
shared = {{ url = "{redis_url}", name = "learn", buffer = 1, timeout_seconds = 0.5 }}

[routers.capped]
models = ["good"]
budget = {{ total = 1.0 }}
shared = {{ url = "{redis_url}", name = "capped", timeout_seconds = 0.5 }}
"""


def readiness(gateway: Process) -> tuple[int, dict[str, Any]]:
    response = httpx.get(f"{gateway.url}/readyz", timeout=60)
    return response.status_code, response.json()


def learn_with_feedback(gateway: Process) -> None:
    answer = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        json={"model": "learn", "messages": [{"role": "user", "content": "hi"}]},
        headers=HEADERS,
        timeout=60,
    )
    assert answer.status_code == 200
    feedback = httpx.post(
        f"{gateway.url}/v1/feedback",
        json={"decision": answer.headers["x-pickllm-decision"], "accuracy": 1.0},
        headers=HEADERS,
        timeout=60,
    )
    assert feedback.status_code == 200


def test_readiness_follows_redis_through_a_pause(
    serve: Serve, upstream: str, redis_server: RedisServer
) -> None:
    gateway = serve(config(upstream, redis_server.url))  # serve() waits for /readyz 200
    assert readiness(gateway) == (200, {"ready": True})
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        learn_with_feedback(gateway)  # waits in the one-event buffer
        learn_with_feedback(gateway)  # dropped: the buffer is full
        reasons: dict[str, str] = {}

        def all_reasons() -> bool:
            status, body = readiness(gateway)
            reasons.update(body.get("reasons", {}))
            return status == 503 and "cannot reach Redis for 1 s" in body["reasons"].get(
                "learn", ""
            )

        wait_for(all_reasons, timeout=60)
        assert reasons["capped"] == "cannot reach Redis and its budget fails closed"
        assert "full feedback buffer" in reasons["learn"]
        # Not ready, yet alive: liveness and the metrics say why.
        assert httpx.get(f"{gateway.url}/healthz", timeout=60).status_code == 200
        assert metric(gateway, "pickllm_shared_connected", router="learn") == 0.0
        assert metric(gateway, "pickllm_shared_dropped_events", router="learn") == 1.0
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    wait_for(lambda: readiness(gateway) == (200, {"ready": True}), timeout=60)
    log = gateway.stop()
    assert "has not reached Redis yet" not in log  # the usual start: not worth a warning
    assert "not ready: router 'capped' cannot reach Redis and its budget fails closed" in log
    assert "not ready: router 'learn' " in log
    assert "router 'learn': shared state ready again" in log
    assert "router 'capped': shared state ready again" in log


def status(*, connected: bool, buffered: int = 0) -> SharedStatus:
    return SharedStatus(
        connected=connected,
        lag=0 if connected else None,
        buffered=buffered,
        dropped=0,
        published=0,
        applied=0,
        rejected=0,
        position="0-0",
    )


def test_the_rule_step_by_step() -> None:
    """The rule on a clock the test moves (the pause above runs it on real processes)."""
    now = [0.0]
    rule = Readiness(grace=10.0, clock=lambda: now[0])

    def observe(connected: bool, *, buffered: int = 0, fails_closed: bool = False) -> str | None:
        return rule.observe(
            "r", status(connected=connected, buffered=buffered), fails_closed=fails_closed, buffer=5
        )

    assert observe(False) == "has not reached Redis yet"
    assert observe(True) is None
    assert observe(False) is None  # within the grace
    now[0] = 9.5
    assert observe(False) is None
    now[0] = 10.0
    assert observe(False) == "cannot reach Redis for 10 s or more"
    assert observe(False, fails_closed=True) == "cannot reach Redis and its budget fails closed"
    assert observe(True) is None  # ready again at once
    assert observe(False, fails_closed=True) is not None  # no grace when failing closed
    assert observe(True, buffered=4) is None
    assert observe(True, buffered=5) == "has a full feedback buffer: new events are dropped"
    now[0] = 30.0
    assert observe(False, buffered=5) == "has a full feedback buffer: new events are dropped"
    now[0] = 40.0
    assert observe(False, buffered=5) == (
        "cannot reach Redis for 10 s or more; has a full feedback buffer: new events are dropped"
    )
