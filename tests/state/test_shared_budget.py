"""One budget in Redis, 4 processes x 200 concurrent calls: the caps are never exceeded."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
import redis

from pickllm import Budget, RedisState, Router
from redis_servers import RedisServer

WORKER = Path(__file__).with_name("budget_worker.py")
NANO = 10**9


def test_four_processes_never_overspend(redis_server: RedisServer) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), json.dumps({"url": redis_server.url, "seed": seed})],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    settled: list[tuple[str, int]] = []
    for worker in workers:
        out, _ = worker.communicate()
        assert worker.returncode == 0
        settled += [tuple(pair) for pair in json.loads(out)]  # type: ignore[misc]
    spent = Counter[str]()
    for context, nanos in settled:
        spent[context] += nanos
    client = redis.Redis.from_url(redis_server.url)
    stored = {k.decode(): int(v) for k, v in client.hgetall("pickllm:b:budget").items()}
    client.close()
    assert stored["spent"] == sum(spent.values()) <= int(0.5 * NANO)
    assert stored["reserved"] == 0
    for context, total in spent.items():
        assert stored[f"spent:{context}"] == total <= int(0.2 * NANO)
    # 800 calls of at least 0.001 USD each could spend 0.8: the caps, not the calls, bound it.
    assert len(settled) < 800
    # Reservations (the worst cases, 4/3 of the costs) filled the total cap to within a call.
    assert sum(spent.values()) * Fraction(4, 3) > int(0.5 * NANO) - 0.01 * NANO


def test_router_spends_through_redis(redis_server: RedisServer) -> None:
    state = RedisState(url=redis_server.url, name="r")
    with Router(["a"], seed=1, shared=state) as router:
        assert router._shared is not None
        spending = router._shared.spending(Budget(total=1.0))
        reservation = spending.reserve("x", 0.25)
        assert reservation is not None
        assert spending.remaining("x") == pytest.approx(0.75, abs=2e-9)
        spending.settle(reservation, 0.1)
        assert spending.spent("x") == spending.spent() == Fraction(1, 10)
        assert spending.reserve("x", 0.91) is None
        assert spending.reserve("x", 0.89) is not None
