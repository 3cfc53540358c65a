"""Benchmarks of shared state on Redis (issue 12; figures in docs/performance.md).

    python benches/shared_state.py            # the figures (about a minute)
    python benches/shared_state.py --smoke    # every measurement once, tiny: what CI runs

Starts its own redis-server (no persistence) on a free port and measures, in one run:

1. ``select`` + ``feedback`` from Python with ``shared=`` attached against without (same process,
   rounds alternated; ratio of medians). Target: within 2x. The hot path is what the caller
   waits for; publishing and applying run on background threads, partly after the loop, so the
   same rounds are also timed up to ``sync`` returning ("sustained": every event published and
   applied here too).
2. Replication throughput: 4 processes each route and feed back as fast as they can; events per
   second until every process has applied all events of all four. Target: >= 50,000/s.
3. Apply lag at a steady 10,000 events/s: from ``feedback`` returning to the event being learned
   by the same process (publish, XADD, XREAD, apply), p50/p99. Target: p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pickllm import RedisState, Router
from redis_servers import RedisServer

MODELS = ["a", "b", "c", "d"]
#: Reward 0 (see benches/python/test_bench_api.py): every round does the same work.
ZERO = {"accuracy": 0.0, "cost": 0.01, "latency": 10.0}


def pairs_per_second(router: Router, n: int) -> float:
    select, feedback = router.select, router.feedback
    start = time.perf_counter()
    for _ in range(n):
        feedback(select("ctx"), **ZERO)
    return n / (time.perf_counter() - start)


def hot_path(url: str, n: int, rounds: int) -> dict[str, float]:
    local = Router(MODELS, seed=1)
    shared = Router(MODELS, seed=1, shared=RedisState(url=url, name="hot", buffer=10**7))
    rates: dict[str, list[float]] = {"local": [], "shared": [], "sustained": []}
    for _ in range(rounds):
        rates["local"].append(pairs_per_second(local, n))
        start = time.perf_counter()
        rates["shared"].append(pairs_per_second(shared, n))
        shared.sync(timeout=600)  # the next round starts with an idle publisher and applier
        rates["sustained"].append(n / (time.perf_counter() - start))
    shared.close()
    local_us, shared_us, sustained_us = (
        1e6 / statistics.median(rates[k]) for k in ("local", "shared", "sustained")
    )
    return {
        "local_us": local_us,
        "shared_us": shared_us,
        "ratio": shared_us / local_us,
        "sustained_us": sustained_us,
        "sustained_ratio": sustained_us / local_us,
    }


def _fleet_worker(url: str, n: int, barrier: multiprocessing.synchronize.Barrier, out) -> None:  # type: ignore[name-defined,no-untyped-def]
    router = Router(MODELS, seed=n, shared=RedisState(url=url, name="fleet", buffer=10**7))
    router.sync(timeout=60)
    barrier.wait()
    start = time.perf_counter()
    for _ in range(n):
        router.feedback(router.select("ctx"), **ZERO)
    barrier.wait()  # everyone's events are queued: now wait until all are applied here
    router.sync(timeout=600)
    barrier.wait()
    router.sync(timeout=600)
    out.put(time.perf_counter() - start)
    router.close()


def throughput(url: str, n: int, processes: int = 4) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    out = context.Queue()
    workers = [
        context.Process(target=_fleet_worker, args=(url, n, barrier, out)) for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    seconds = max(out.get() for _ in workers)
    for worker in workers:
        worker.join()
    return {"events": n * processes, "seconds": seconds, "per_second": n * processes / seconds}


def lag(url: str, rate: int, seconds: float) -> dict[str, float]:
    router = Router(MODELS, seed=3, shared=RedisState(url=url, name="lag", buffer=10**7))
    router.sync(timeout=60)
    replica = router._shared
    assert replica is not None
    sent: dict[int, float] = {}
    lags: list[float] = []

    done = 0

    def applied(seen: dict[str, int]) -> None:
        nonlocal done
        now = time.perf_counter()
        last = seen.get(replica.id, 0)
        lags.extend(now - sent[seq] for seq in range(done + 1, last + 1))
        done = last

    replica.on_applied = applied
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        while time.perf_counter() < start + i / rate:  # pacing: the benchmark's load, not sync
            time.sleep(0.0002)
        decision = router.select("ctx")
        sent[i + 1] = time.perf_counter()
        router.feedback(decision, **ZERO)
    router.sync(timeout=600)
    router.close()
    lags.sort()
    return {
        "events": len(lags),
        "p50_ms": 1000 * lags[len(lags) // 2],
        "p99_ms": 1000 * lags[int(len(lags) * 0.99)],
        "max_ms": 1000 * lags[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, untimed: for CI")
    smoke = parser.parse_args().smoke
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder), persistent=False)
        try:
            results = {
                "hot_path": hot_path(server.url, 200 if smoke else 50_000, 1 if smoke else 5),
                "throughput": throughput(server.url, 100 if smoke else 50_000),
                "lag": lag(server.url, 10_000, 0.02 if smoke else 5.0),
            }
        finally:
            server.stop()
    print(json.dumps(results, indent=2))
    if not smoke:
        hot, fleet, late = results["hot_path"], results["throughput"], results["lag"]
        print(
            f"select+feedback: {hot['local_us']:.2f} us local, {hot['shared_us']:.2f} us shared"
            f" ({hot['ratio']:.2f}x; target <= 2x); {hot['sustained_us']:.2f} us sustained"
            f" ({hot['sustained_ratio']:.2f}x)\n"
            f"replication: {fleet['per_second']:,.0f} events/s from 4 processes"
            " (target >= 50,000/s)\n"
            f"apply lag at 10,000 events/s: p50 {late['p50_ms']:.2f} ms, p99 {late['p99_ms']:.2f}"
            f" ms, max {late['max_ms']:.2f} ms (target p99 < 50 ms)"
        )


if __name__ == "__main__":
    main()
