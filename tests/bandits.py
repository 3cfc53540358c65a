"""Bernoulli bandits for statistical tests: each model is right with a fixed probability."""

from __future__ import annotations

import random
from collections.abc import Sequence

from pickllm import Policy, Reward, Router

#: Reward = accuracy, so the bandit's success probabilities are the expected rewards.
ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)


def run_until_converged(
    success: Sequence[float], policy: Policy, seed: int, max_queries: int = 20_000
) -> tuple[str | None, int]:
    """Route one session until the learner converges; returns (model, queries used)."""
    models = [f"m{i}" for i in range(len(success))]
    router = Router(models, policy=policy, reward=ACCURACY_ONLY, seed=seed)
    outcomes = random.Random(seed)
    for query in range(1, max_queries + 1):
        decision = router.select()
        correct = outcomes.random() < success[models.index(decision.model)]
        router.feedback(decision, accuracy=1.0 if correct else 0.0)
        winner = router.converged()
        if winner is not None:
            return winner, query
    return None, max_queries
