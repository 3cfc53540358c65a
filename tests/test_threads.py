"""Many threads sharing one router: no errors, no lost or doubled feedback."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pickllm import LearningAutomaton, QLearning, Router

THREADS = 8
ROUNDS = 10_000


@pytest.mark.parametrize("policy", [LearningAutomaton(0.01), QLearning(0.1)])
def test_threads_share_one_router(policy: LearningAutomaton | QLearning) -> None:
    router = Router(["a", "b", "c", "d"], policy=policy, seed=5)

    def work(thread: int) -> int:
        context = f"tenant-{thread % 4}"
        for i in range(ROUNDS):
            d = router.select(context)
            assert d.context == context
            router.feedback(d, accuracy=(i % 3) / 2, cost=0.001, latency=0.2)
        return thread

    with ThreadPoolExecutor(THREADS) as pool:
        assert sorted(pool.map(work, range(THREADS))) == list(range(THREADS))

    # Two threads per context, ROUNDS feedbacks each, every one applied exactly once.
    for tenant in range(4):
        counts = router.feedback_counts(f"tenant-{tenant}")
        assert sum(counts.values()) == 2 * ROUNDS
    assert router.pending == 0
    assert sorted(router.contexts()) == [f"tenant-{t}" for t in range(4)]
