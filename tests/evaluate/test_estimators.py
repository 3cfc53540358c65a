"""The estimators on hand-computed cases, and the candidates' parsing and discovery."""

from __future__ import annotations

import math
import typing

import pytest

from pickllm import ConfigError, LearningAutomaton, Policy, QLearning
from pickllm.evaluate import FixedModel, builtin_policies, parse_candidate
from pickllm.evaluate.accumulate import IPSSums, quantile, wilson
from pickllm.evaluate.estimators import (
    doubly_robust,
    effective_sample_size,
    ips,
    mean,
    snips,
)
from pickllm.evaluate.rejection import t975
from pickllm.evaluate.reward_model import RewardModel


def test_ips_and_snips_by_hand() -> None:
    weights, values = [3.0, 0.0, 0.0, 3.0, 0.0, 0.0], [1.0, 0.2, 0.4, 0.5, 0.0, 1.0]
    est = ips(weights, values)
    assert est.value == pytest.approx(4.5 / 6)
    terms = [3.0, 0, 0, 1.5, 0, 0]
    sd = math.sqrt(sum((t - 0.75) ** 2 for t in terms) / 5)
    assert est.half_width == pytest.approx(1.959963984540054 * sd / math.sqrt(6))
    self_normalized = snips(weights, values)
    assert self_normalized.value == pytest.approx(0.75)
    influence = [w * (y - 0.75) / 1.0 for w, y in zip(weights, values, strict=True)]
    se = math.sqrt(sum(x * x for x in influence) / 5 / 6)
    assert self_normalized.half_width == pytest.approx(1.959963984540054 * se)
    assert effective_sample_size(weights) == pytest.approx(2.0)


def test_snips_without_weight_is_nan_and_one_record_has_an_infinite_interval() -> None:
    assert math.isnan(snips([0.0, 0.0], [1.0, 0.0]).value)
    assert math.isinf(mean([0.5]).high)
    assert effective_sample_size([0.0]) == 0.0


def test_doubly_robust_with_an_exact_reward_model_has_no_variance() -> None:
    # Predictions equal the observations: every term is the direct value.
    est = doubly_robust([2.0, 0.0, 2.0], [1.0, 0.0, 1.0], [1.0, 0.0, 1.0], [0.7, 0.7, 0.7])
    assert est.value == pytest.approx(0.7)
    assert est.half_width == pytest.approx(0.0)


def test_reward_model_shrinks_rare_cells_to_the_models_mean() -> None:
    rows = [("a", "m", 1.0)] * 100 + [("b", "m", 0.0)] + [("a", "n", 0.0)] * 10
    model = RewardModel.fit(rows, strength=5.0)
    overall = 100 / 111
    global_m = (100 + 5 * overall) / (101 + 5)
    assert model.predict("a", "m") == pytest.approx((100 + 5 * global_m) / 105)
    assert model.predict("b", "m") == pytest.approx(5 * global_m / 6)
    assert model.predict("zzz", "unknown") == pytest.approx(overall)


def few_heavy_records() -> IPSSums:
    """995 records the candidate would not have chosen, 5 it would have, each with weight 200
    (picked with probability 1/200), all correct: an estimate worth 5 records."""
    sums = IPSSums()
    for i in range(1000):
        sums.add(200.0 if i % 200 == 0 else 0.0, 1.0)
    return sums


def test_a_proportion_from_few_heavy_records_keeps_its_variance() -> None:
    sums = few_heavy_records()
    assert sums.effective_size() == pytest.approx(5.0)
    # As a proportion: Wilson's score interval at 5 records, [5 / (5 + z^2), 1].
    wilson_low = 5 / (5 + 1.959963984540054**2)
    snips = sums.snips(binary=True)
    assert snips.value == 1.0
    assert (snips.low, snips.high) == (pytest.approx(wilson_low), pytest.approx(1.0))
    # Read as any number, five equal values show no variance: an interval of width 0.
    assert sums.snips().half_width == 0.0
    # IPS: the sample variance of the terms w y with Student's t at 4 degrees of freedom...
    variance = (5 * 200.0**2 - 1000 * 1.0**2) / 999
    assert sums.ips().half_width == pytest.approx(t975(4) * math.sqrt(variance / 1000))
    # ... and, for 0/1 values, at least what 0/1 outcomes at the adjusted estimate would show.
    p = (wilson_low + 1) / 2
    least = 200.0**2 * 5 / 1000 * p - (200.0 * 5 / 1000 * p) ** 2
    assert sums.ips(binary=True).half_width == pytest.approx(
        t975(4) * math.sqrt(max(variance, least) / 1000)
    )


def test_wilson_and_the_t_quantile_of_an_effective_size() -> None:
    interval = wilson(0.5, 100)
    assert (interval.low, interval.high) == (
        pytest.approx(0.4038, abs=1e-4),
        pytest.approx(0.5962, abs=1e-4),
    )
    assert quantile(5.0) == t975(4)
    assert quantile(5.9) == t975(4)  # rounded down: never narrower than the evidence allows
    assert quantile(1.2) == t975(1)


def test_weights_that_do_not_average_to_one_are_caught() -> None:
    # A uniform logger over 3 models: weight 3 one time in three, exactly 1 on average.
    uniform = IPSSums()
    for i in range(900):
        uniform.add(3.0 if i % 3 == 0 else 0.0, 1.0)
    assert uniform.mean_weight().covers(1.0)
    # A model the logger picked with probability 1 in one context and never in the other
    # (but twice by chance, weight 2): the weights average about 0.5.
    lopsided = IPSSums()
    for i in range(1000):
        lopsided.add(1.0 if i < 500 else (2.0 if i in (600, 700) else 0.0), 1.0)
    assert not lopsided.mean_weight().covers(1.0)
    assert lopsided.effective_size() > 30  # which the effective sample size does not see


def test_t_quantiles() -> None:
    assert t975(1) == 12.706
    assert t975(30) == 2.042
    assert t975(31) == pytest.approx(2.0395, abs=1e-3)
    assert t975(10_000) == pytest.approx(1.96, abs=1e-3)


def test_candidates_are_models_kinds_or_json() -> None:
    models = ["big", "small"]
    assert parse_candidate("big", models) == FixedModel("big")
    assert parse_candidate("q_learning", models) == QLearning()
    parsed = parse_candidate('{"kind": "learning_automaton", "learning_rate": 0.3}', models)
    assert parsed == LearningAutomaton(0.3)
    with pytest.raises(ConfigError, match="neither a model"):
        parse_candidate("nope", models)
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_candidate("{bad", models)
    with pytest.raises(ConfigError, match="needs a kind"):
        parse_candidate('{"kind": "magic"}', models)
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_candidate('{"kind": "learning_automaton", "learning_rate": -1}', models)


def test_builtin_policies_follow_the_policy_union() -> None:
    """New learners added to pickllm.Policy are evaluated without touching evaluate/."""
    assert [type(p) for p in builtin_policies()] == list(typing.get_args(Policy))
    assert all(p == type(p)() for p in builtin_policies())
