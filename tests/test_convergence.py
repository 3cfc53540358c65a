"""Statistical behaviour of the learners on Bernoulli bandits, with fixed seeds.

Each assertion's margin comes from the maths in its docstring, so that the fixed seeds are
typical ones rather than lucky ones: changing the seeds would not make these tests fail except
with the (tiny) probabilities computed there.
"""

from __future__ import annotations

import random
import statistics

from bandits import ACCURACY_ONLY, run_until_converged
from pickllm import LearningAutomaton, QLearning, Router

SEEDS = range(200)
#: Two arms answering correctly 80% and 40% of the time.
TWO_ARMS = (0.8, 0.4)


def test_small_learning_rate_converges_to_the_best_arm_in_nearly_every_seed() -> None:
    """Linear reward-inaction on two Bernoulli arms with means d1 > d2, start p = 1/2.

    With p the best arm's probability, one step has drift beta*p*(1-p)*(d1-d2) and variance
    beta^2*p*(1-p)*(d1*(1-p) + d2*p). The diffusion approximation's scale function then gives
    P(absorbed at the worse arm) = (g^(k+1) - d2^(k+1)) / (d1^(k+1) - d2^(k+1)), where
    g = (d1 + d2)/2 and k = 2/beta. For beta = 0.05, d = (0.8, 0.4): about 0.75^41 = 7.5e-6 per
    session, so 200 sessions are all expected right (1.5e-3 expected failures); we allow one.
    """
    results = [run_until_converged(TWO_ARMS, LearningAutomaton(0.05), seed) for seed in SEEDS]
    right = sum(model == "m0" for model, _ in results)
    assert right >= len(SEEDS) - 1, f"{right}/{len(SEEDS)} sessions converged to the best arm"


def test_large_learning_rate_converges_faster_and_less_reliably() -> None:
    """Convergence time: the log-odds of the best arm drift by beta*(d1-d2) per step, so reaching
    p = 0.99 from 1/2 (log-odds 0 -> 4.6) takes about 4.6/(beta*0.4) queries: ~230 at
    beta = 0.05 and ~23 at beta = 0.5, a ratio of 10; we require a ratio above 4.

    Reliability: the same formula as above with k = 4 gives about 21% wrong sessions at
    beta = 0.5 (the diffusion approximation is rough at such a large step, but the rate is
    clearly non-zero). Binomial(200, 0.2) has mean 40 and sd 5.7; we require at least 10, more
    than 5 sd below, and more wrong sessions than at beta = 0.05.
    """
    slow = [run_until_converged(TWO_ARMS, LearningAutomaton(0.05), seed) for seed in SEEDS]
    fast = [run_until_converged(TWO_ARMS, LearningAutomaton(0.5), seed) for seed in SEEDS]
    slow_median = statistics.median(queries for _, queries in slow)
    fast_median = statistics.median(queries for _, queries in fast)
    assert fast_median * 4 < slow_median, (fast_median, slow_median)
    slow_wrong = sum(model != "m0" for model, _ in slow)
    fast_wrong = sum(model != "m0" for model, _ in fast)
    assert fast_wrong >= 10
    assert fast_wrong > slow_wrong


def test_q_learning_identifies_the_best_arm() -> None:
    """Three arms (0.8, 0.5, 0.3), constant epsilon 0.2, sample averages, 3,000 queries.

    Exploration alone pulls each arm Binomial(3000, 0.2/3) times: mean 200, sd 14, so at least
    150 except with negligible probability. With n >= 150 pulls, Hoeffding bounds the chance
    that an arm's mean is off by 0.15 (half the smallest gap) by exp(-2*150*0.15^2) = 1.2e-3;
    over three arms, 3.5e-3 per session, 0.7 expected failures in 200 sessions. We allow two.
    """
    success = (0.8, 0.5, 0.3)
    policy = QLearning(
        "sample_average", epsilon=0.2, epsilon_decay=1.0, epsilon_min=0.2, lock=False
    )
    right = 0
    for seed in SEEDS:
        router = Router(["m0", "m1", "m2"], policy=policy, reward=ACCURACY_ONLY, seed=seed)
        outcomes = random.Random(seed)
        for _ in range(3000):
            d = router.select()
            correct = outcomes.random() < success[int(d.model[1])]
            router.feedback(d, accuracy=float(correct))
        probabilities = router.probabilities()
        right += max(probabilities, key=probabilities.__getitem__) == "m0"
    assert right >= len(SEEDS) - 2


def test_q_learning_with_decay_locks_onto_the_best_arm() -> None:
    """Decaying exploration reaches its floor after log(0.05/0.3)/log(0.99) = 178 feedbacks,
    then the convergence rule needs 50 more with the same unique greedy arm. By then each arm
    has had about 0.3*sum(0.99^t)/3 ~ 8 exploratory pulls, the weakest evidence in the run,
    and the gap is 0.5, so wrong locks are rare; we require 45 of 50 sessions."""
    policy = QLearning(0.1, epsilon=0.3, epsilon_decay=0.99, epsilon_min=0.05, patience=50)
    results = [run_until_converged((0.9, 0.4, 0.4), policy, seed) for seed in range(50)]
    assert all(model is not None for model, _ in results)
    assert sum(model == "m0" for model, _ in results) >= 45


def test_two_contexts_with_different_best_models_converge_to_different_models() -> None:
    """Finance favours m0, medicine favours m2 (0.9 against 0.3): a gap of 0.6, four times
    the automaton's bound above needs, so every seed converges right in both contexts."""
    best = {"finance": 0, "medicine": 2}
    for seed in range(20):
        router = Router(
            ["m0", "m1", "m2"], policy=LearningAutomaton(0.05), reward=ACCURACY_ONLY, seed=seed
        )
        outcomes = random.Random(seed)
        for query in range(6000):
            context = "finance" if query % 2 == 0 else "medicine"
            d = router.select(context)
            p = 0.9 if int(d.model[1]) == best[context] else 0.3
            router.feedback(d, accuracy=float(outcomes.random() < p))
        assert router.converged("finance") == "m0"
        assert router.converged("medicine") == "m2"
