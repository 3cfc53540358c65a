"""A router naming ``shared = {url, name}`` holds its budget in Redis (a real redis-server), so
several gateway processes never overspend one cap between them."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from gateway_servers import KEY, Serve, metric
from redis_servers import RedisServer

#: Each answer of the local upstream reports 5 completion tokens; at 1 USD per 1M output
#: tokens, no input price and max_tokens = 5, a call's worst-case cost is its actual cost.
CALL_USD = Fraction(5, 10**6)
#: Room for three calls and a half: three fit, the fourth does not, in any one process alone
#: as well as across all of them.
CAP_USD = Fraction(35, 2 * 10**6)


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, persistent=False)
    yield server
    server.stop()


def config(upstream: str, redis_url: str) -> str:
    return f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]

[models.good]
base_url = "{upstream}"
output_price = 1.0
max_tokens = 5

[routers.capped]
models = ["good"]
budget = {{ total = {float(CAP_USD)!r} }}
shared = {{ url = "{redis_url}", name = "capped" }}
"""


def test_two_gateways_share_one_budget(serve: Serve, upstream: str, redis: RedisServer) -> None:
    """Two gateway processes, requests alternating between them: three calls fit the cap in
    all, so the fourth is refused by both (each alone would have admitted three)."""
    text = config(upstream, redis.url)
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
