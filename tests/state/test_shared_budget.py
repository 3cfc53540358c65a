"""One budget in Redis, 4 processes x 200 concurrent calls: the caps are never exceeded."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
import redis

from model_farm import answer, model_farm
from pickllm import Budget, Model, OpenAICompatible, RedisState, Router
from redis_servers import RedisServer, wait_for

WORKER = Path(__file__).with_name("budget_worker.py")
RESERVER = Path(__file__).with_name("reserve_worker.py")
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


def test_free_models_route_with_a_shared_budget(redis_server: RedisServer) -> None:
    """Price 0 (the default) reserves nothing and settles nothing: no Redis round trip, no
    ``HINCRBY ... -0``; a priced model next to it is charged exactly."""
    state = RedisState(url=redis_server.url, name="free")
    with model_farm({"free": answer("B"), "paid": answer("B")}) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="sk-test", timeout=5.0)
        models = [
            Model("free", backend=backend, max_tokens=8),
            Model("paid", backend=backend, input_price=1000.0, output_price=2000.0, max_tokens=8),
        ]
        with Router(models, seed=1, shared=state, budget=Budget(total=1.0)) as router:
            results = [router.route("2 + 2?", context=f"c{i % 3}") for i in range(30)]
            asyncio.run(router.aroute("2 + 2?", context="c0"))
            paid = sum(r.model == "paid" for r in results)
            assert 0 < paid < 30
            assert farm.calls["free"] > 0
            expected = Fraction(paid * (12 * 1000 + 5 * 2000), 10**6)
            if farm.calls["paid"] > paid:  # the aroute call
                expected += Fraction(12 * 1000 + 5 * 2000, 10**6)
            assert Fraction(router.spent()) == pytest.approx(expected, abs=1e-9)
            client = redis.Redis.from_url(redis_server.url)
            assert int(client.hget("pickllm:free:budget", "reserved") or 0) == 0
            client.close()
        backend.close()


def test_a_killed_holder_s_reservations_expire_with_its_lease(redis_server: RedisServer) -> None:
    worker = subprocess.Popen(
        [sys.executable, str(RESERVER), json.dumps({"url": redis_server.url, "lease_seconds": 1})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert worker.stdout is not None
    assert worker.stdout.readline().strip() == "held"
    client = redis.Redis.from_url(redis_server.url)
    assert int(client.hget("pickllm:lease:budget", "reserved") or 0) == NANO // 2
    state = RedisState(url=redis_server.url, name="lease", lease_seconds=1)
    with Router(["a", "b"], seed=2, shared=state) as router:
        assert router._shared is not None
        spending = router._shared.spending(Budget(total=1.0))
        mine = spending.reserve("x", 0.1)
        assert mine is not None
        assert spending.reserve("x", 0.5) is None, "the killed worker's 0.5 still held"
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        # Its lease runs out; this router's applier (renewing its own, which it keeps alive
        # well past 1 s) releases the dead holder's.
        left = int(mine.amount * NANO)  # 0.1 rounded up to whole nano-dollars
        wait_for(lambda: int(client.hget("pickllm:lease:budget", "reserved") or 0) == left)
        assert spending.reserve("x", 0.5) is not None
        spending.settle(mine, 0.05)
        assert spending.spent("x") == Fraction(1, 20)
    client.close()
    worker.stdin.close()  # type: ignore[union-attr]
    worker.stdout.close()
