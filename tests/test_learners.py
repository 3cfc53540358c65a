"""The newer learners from Python: configuration, convergence, shared evidence, drift replay."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from pickllm import UCB, ConfigError, Exp3, Policy, Reward, Router, ThompsonSampling
from pickllm.cli import main
from pickllm.config import policy_from_core

#: Accuracy-only observations: the reward is the accuracy.
PERFECT = {"accuracy": 1.0, "cost": 0.0, "latency": 0.0}
USELESS = {"accuracy": 0.0, "cost": 0.0, "latency": 0.0}


def test_learners_doc_examples_run() -> None:
    text = (REPO_ROOT / "docs" / "learners.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, "docs/learners.md", "exec"), namespace)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ThompsonSampling(discount=0.0), "discount"),
        (lambda: ThompsonSampling(discount=1.5), "discount"),
        (lambda: ThompsonSampling(prior=(0.0, 1.0)), "prior"),
        (lambda: ThompsonSampling(threshold=1.5), "threshold"),
        (lambda: Router(["a", "b", "c", "d"], policy=ThompsonSampling(threshold=0.2)), "threshold"),
        (lambda: UCB(exploration=0.0), "exploration"),
        (lambda: UCB(discount=0.0), "discount"),
        (lambda: UCB(share=-1.0), "share"),
        (lambda: UCB(bound="best"), "bound"),  # type: ignore[arg-type]
        (lambda: Exp3(gamma=0.0), "gamma"),
        (lambda: Exp3(discount=2.0), "discount"),
        (lambda: Exp3(lock="no"), "lock"),  # type: ignore[arg-type]
    ],
)
def test_bad_configurations_are_refused_naming_the_field(
    build: Callable[[], Any], field: str
) -> None:
    with pytest.raises(ConfigError, match=field):
        build()


@pytest.mark.parametrize(
    "policy", [ThompsonSampling(), UCB(bound="tuned"), UCB(bound="kl", share=0.0), Exp3()]
)
def test_configs_round_trip_through_the_core(policy: Policy) -> None:
    router = Router(["a", "b"], policy=policy, seed=1)
    assert policy_from_core(policy._core_dict()) == policy
    assert Router.restore(router.snapshot()).policy == policy


@pytest.mark.parametrize(
    "policy",
    [
        ThompsonSampling(threshold=0.95, lock=True),
        UCB(lock=True, share=0.0),
        Exp3(gamma=0.1, threshold=0.9, lock=True),
    ],
)
def test_each_learner_converges_and_locks_onto_a_model_that_is_always_right(
    policy: Policy,
) -> None:
    """Model "good" is always right, "bad" never. Margins: Thompson, once "good" has 100
    successes, gives "bad" (even untried) at most 1/102 < 0.05 chance of being best; UCB's own
    widths (exploration 0.5, rewards without variance): "bad", tried once, keeps one of at most
    sqrt(ln t / 8) < 0.93 while t <= 1000, and "good"'s is below 0.06 once it has 200 feedbacks,
    so they separate long before 2,000; Exp3's log-weight gap grows by
    gamma / 2 / p >= 0.05 per success of "good" and each failure of "bad" leaves it unchanged, so
    ln(0.9 / 0.1) = 2.2 needs at most 44 successes of "good" after its share is below 0.9."""
    router = Router(["good", "bad"], policy=policy, seed=3)
    for _ in range(2000):
        d = router.select("c")
        router.feedback(d, **(PERFECT if d.model == "good" else USELESS))
        if router.converged("c") is not None:
            break
    assert router.converged("c") == "good"
    for _ in range(20):
        d = router.select("c")
        assert (d.model, d.probability) == ("good", 1.0)
        router.feedback(d, **USELESS)
    assert router.converged("c") == "good", "locked: the failures teach nothing"


def test_unlocked_learners_follow_a_change() -> None:
    """lock=False: after "a" stops being right and "b" starts, the greedy model changes."""
    router = Router(["a", "b"], policy=ThompsonSampling(discount=0.95), seed=5)
    for step in range(600):
        d = router.select("c")
        right = (d.model == "a") == (step < 300)
        router.feedback(d, **(PERFECT if right else USELESS))
    p = router.probabilities("c")
    assert p["b"] > 0.9, p


def test_shared_evidence_starts_a_new_context_from_the_pool() -> None:
    """With share > 0 a context nobody has seen starts on the model the pool found best; with
    share=0 its models tie and it draws among them."""
    for share, expected in [(5.0, {"good": 1.0, "bad": 0.0}), (0.0, {"good": 0.5, "bad": 0.5})]:
        router = Router(["good", "bad"], policy=UCB(share=share, floor=0.0), seed=2)
        for model, outcome in [("good", PERFECT), ("bad", USELESS)] * 5:
            d = router.select("seen", allowed=[model])
            router.feedback(d, **outcome)
        assert router.probabilities("new") == expected


def test_replay_cli_reports_recovery_after_a_drift(tmp_path: Path) -> None:
    out = tmp_path / "out"
    status = main(
        [
            "replay",
            "--policies",
            "ucb,thompson",
            "--drift",
            "300:0:0.0",
            "--sessions",
            "2",
            "--queries",
            "600",
            "--no-figures",
            "--no-progress",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    results = json.loads((out / "results.json").read_text())
    ucb = next(r for r in results["results"] if r["label"].startswith("ucb-tuned c=0.5 share=5"))
    assert set(ucb["metrics"]) >= {"queries_to_recover", "recovered", "new_best_share"}
    assert 0.0 <= ucb["metrics"]["recovered"]["mean"] <= 1.0


@pytest.mark.parametrize("bad", ["300", "x:0:0.5", "300:0:0.5:1:2"])
def test_a_bad_drift_is_refused(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["replay", "--drift", bad])
    assert caught.value.code == 2
    assert "AT:MODEL:ACCURACY" in capsys.readouterr().err


def _exact_best_probabilities(alphas: list[int], betas: list[int]) -> list[float]:
    """P(model a's mean is the largest) for Beta posteriors with integer parameters, exactly:
    every density and CDF is then a polynomial with rational coefficients, so
    ``integral of f_a * prod_b F_b over [0, 1]`` is computed in fractions, without error."""
    from fractions import Fraction
    from math import comb

    def times(p: list[Fraction], q: list[Fraction]) -> list[Fraction]:
        out = [Fraction(0)] * (len(p) + len(q) - 1)
        for i, a in enumerate(p):
            for j, b in enumerate(q):
                out[i + j] += a * b
        return out

    def antiderivative(p: list[Fraction]) -> list[Fraction]:
        return [Fraction(0)] + [c / (i + 1) for i, c in enumerate(p)]

    def density(a: int, b: int) -> list[Fraction]:
        # x^(a-1) (1-x)^(b-1) / B(a, b), with 1/B(a, b) = (a+b-1) C(a+b-2, a-1).
        scale = (a + b - 1) * comb(a + b - 2, a - 1)
        p = [Fraction(0)] * (a + b - 1)
        for k in range(b):
            p[a - 1 + k] += Fraction(scale * comb(b - 1, k) * (-1) ** k)
        return p

    result = []
    for a, (alpha, beta) in enumerate(zip(alphas, betas, strict=True)):
        integrand = density(alpha, beta)
        for b, (other_alpha, other_beta) in enumerate(zip(alphas, betas, strict=True)):
            if b != a:
                integrand = times(integrand, antiderivative(density(other_alpha, other_beta)))
        result.append(float(sum(antiderivative(integrand))))
    return result


@pytest.mark.parametrize(
    ("successes", "failures", "tolerance"),
    [
        # Some model with at most 10 observations: within 0.07.
        ((1, 0), (0, 1), 0.07),
        ((0, 2), (2, 0), 0.07),
        ((1, 1, 0), (1, 0, 2), 0.07),
        ((0, 0, 0, 1, 0, 4), (1, 3, 3, 4, 0, 1), 0.07),
        ((8, 9, 4, 6, 9, 5), (2, 8, 7, 2, 1, 0), 0.07),  # the worst of the sweep: 0.068
        # Every model with more than 10: within 0.02; more than 40: within 0.01.
        ((29, 12, 9, 28, 7, 20), (3, 5, 7, 6, 28, 13), 0.02),
        ((40, 30), (10, 25), 0.01),
        ((60, 47, 63), (15, 73, 62), 0.01),
    ],
)
def test_thompson_probabilities_are_within_the_documented_accuracy_of_exact_beta_ones(
    successes: tuple[int, ...], failures: tuple[int, ...], tolerance: float
) -> None:
    """The documented accuracy (docs/learners.md), against the exact probabilities of being
    best: the learner's normal approximation is furthest off for skewed posteriors (few
    observations, means near 0 or 1). What the learner reports is still exactly the probability
    it draws with; this is how far that policy is from exact Thompson sampling."""
    models = [f"m{i}" for i in range(len(successes))]
    reward = Reward(accuracy=1.0, cost=0.0, latency=0.0)
    router = Router(models, policy=ThompsonSampling(), reward=reward, seed=0)
    for model, wins, losses in zip(models, successes, failures, strict=True):
        for accuracy in [1.0] * wins + [0.0] * losses:
            d = router.select("c", allowed=[model])
            router.feedback(d, accuracy=accuracy, cost=0.0, latency=0.0)
    computed = router.probabilities("c")
    exact = _exact_best_probabilities([1 + w for w in successes], [1 + f for f in failures])
    for model, truth in zip(models, exact, strict=True):
        assert abs(computed[model] - truth) < tolerance, (computed, exact)


def test_the_exact_reference_is_exact() -> None:
    """Two uniform posteriors tie; Beta(2, 1) beats Beta(1, 1) with probability 2/3."""
    assert _exact_best_probabilities([1, 1], [1, 1]) == [0.5, 0.5]
    two_thirds = _exact_best_probabilities([2, 1], [1, 1])
    assert abs(two_thirds[0] - 2 / 3) < 1e-15
    assert abs(sum(two_thirds) - 1) < 1e-15
