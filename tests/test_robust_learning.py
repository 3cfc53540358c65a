"""Shared priors that never lock a model out, the exploration floor and change detection."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import given

from pickllm import UCB, ChangeDetector, ConfigError, Policy, Router, ThompsonSampling

MODELS = ["best", "m1", "m2", "m3"]
CONTEXTS = ["x", "y", "z"]


def unlucky_start(router: Router, queries: int) -> list[str]:
    """Contexts interleaved in turn; "best" answers right every time but its first, the others
    earn 0.6 (deterministic rewards: only the router's own randomness varies). Returns the
    picks."""
    picks, first = [], True
    for q in range(queries):
        d = router.select(CONTEXTS[q % 3])
        accuracy = 0.6
        if d.model == "best":
            accuracy, first = (0.0 if first else 1.0), False
        router.feedback(d, accuracy=accuracy)
        picks.append(d.model)
    return picks


@given(seed=st.integers(0, 2**64 - 1), share=st.sampled_from([1.0, 5.0, 20.0, 100.0]))
def test_a_best_model_whose_first_answer_is_wrong_is_not_locked_out_by_a_shared_prior(
    seed: int, share: float
) -> None:
    # No floor, no detector: the cap alone. The pooled mean of "best" rests on one failure and
    # weighs one feedback (not `share`), so its bound keeps growing with ln t until UCB tries it
    # again, in every context and whatever the tie-breaking draws (the seed's only role).
    router = Router(MODELS, policy=UCB(share=share, floor=0.0, detect_changes=None), seed=seed)
    picks = unlucky_start(router, 1500)
    assert picks[-300:].count("best") >= 290


@pytest.mark.parametrize("seed", range(10))
def test_thompson_sampling_with_a_shared_prior_recovers_from_an_unlucky_start(seed: int) -> None:
    router = Router(MODELS, policy=ThompsonSampling(share=20.0), seed=seed)
    picks = unlucky_start(router, 1500)
    assert picks[-300:].count("best") >= 250


def test_the_default_logs_exact_propensities_below_one_with_a_floor_on_every_model() -> None:
    router = Router(MODELS, seed=3)
    assert router.policy.floor == 0.01
    for q in range(2000):
        d = router.select(CONTEXTS[q % 3], exclude=["m3"] if q % 2 else None)
        allowed = 3 if q % 2 else 4
        assert 0.01 / allowed - 1e-12 <= d.probability < 1.0
        assert d.probability == pytest.approx(router.probabilities(d.context)[d.model]) or q % 2
        router.feedback(d, accuracy=1.0 if d.model == "m1" else 0.2)
    probabilities = router.probabilities("x")
    assert min(probabilities.values()) == pytest.approx(0.01 / 4)
    assert probabilities["m1"] == pytest.approx(0.99 + 0.01 / 4)


def test_bad_floors_and_detectors_are_refused() -> None:
    for build in (
        lambda: UCB(floor=-0.1),
        lambda: UCB(floor=0.6),
        lambda: ThompsonSampling(floor=1.0),
    ):
        with pytest.raises(ConfigError, match="floor"):
            build()
    with pytest.raises(ConfigError, match="delta"):
        ChangeDetector(delta=0.0)
    with pytest.raises(ConfigError, match="stride"):
        ChangeDetector(stride=0)


def drifting(router: Router, seed: int, queries: int = 4000) -> list[str]:
    """Three models at 0.8 / 0.5 / 0.3 accuracy becoming 0.3 / 0.5 / 0.85 at query 2,000."""
    outcomes = random.Random(seed)
    picks = []
    for q in range(queries):
        accuracies = (0.8, 0.5, 0.3) if q < 2000 else (0.3, 0.5, 0.85)
        draws = [outcomes.random() for _ in range(3)]
        d = router.select("only")
        arm = "abc".index(d.model)
        router.feedback(d, accuracy=float(draws[arm] < accuracies[arm]))
        picks.append(d.model)
    return picks


@pytest.mark.parametrize("seed", range(5))
def test_the_default_detects_a_change_restarts_logs_and_follows_it(
    seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    router = Router(["a", "b", "c"], seed=seed)
    with caplog.at_level(logging.WARNING, logger="pickllm.router"):
        picks = drifting(router, seed)
    changes = router.stats().changes
    assert changes >= 1
    assert sum("change detected" in r.getMessage() for r in caplog.records) == changes
    assert picks[3500:].count("c") > 400
    # The count survives a snapshot.
    assert Router.restore(router.snapshot()).stats().changes == changes


detectors = st.builds(ChangeDetector, delta=st.floats(0.001, 0.5), stride=st.integers(1, 5))
detecting = st.one_of(
    st.builds(
        UCB,
        share=st.floats(0.0, 20.0),
        floor=st.floats(0.0, 0.5),
        discount=st.floats(0.9, 1.0),
        detect_changes=detectors,
    ),
    st.builds(
        ThompsonSampling,
        share=st.floats(0.0, 20.0),
        floor=st.floats(0.0, 0.5),
        detect_changes=detectors,
    ),
)
plans = st.lists(
    st.tuples(st.sampled_from(CONTEXTS), st.sampled_from(MODELS), st.floats(0.0, 1.0)),
    max_size=300,
)


@given(policy=detecting, plan=plans, seed=st.integers(0, 2**64 - 1))
def test_replicas_applying_the_same_events_detect_the_same_changes(
    policy: Policy, plan: list[tuple[str, str, float]], seed: int
) -> None:
    # Two replicas with different seeds (so different selections in between) learn the same
    # events: they restart at the same events and end identical.
    one, two = Router(MODELS, policy=policy, seed=seed), Router(MODELS, policy=policy, seed=1)
    for i, (context, model, accuracy) in enumerate(plan):
        for router in (one, two):
            router.observe(context, model, accuracy=accuracy, probability=0.5)
        if i % 7 == 0:
            two.select(context)
    assert one.stats().changes == two.stats().changes
    for context in CONTEXTS:
        assert one.probabilities(context) == two.probabilities(context)
        assert one.feedback_counts(context) == two.feedback_counts(context)


@given(
    reward=st.floats(0.0, 1.0),
    feedbacks=st.integers(1, 3000),
    delta=st.floats(0.001, 0.9),
    stride=st.integers(1, 20),
)
def test_a_constant_stream_never_raises_an_alarm(
    reward: float, feedbacks: int, delta: float, stride: int
) -> None:
    router = Router(["a", "b"], policy=UCB(detect_changes=ChangeDetector(delta, stride)), seed=0)
    for _ in range(feedbacks):
        router.observe("x", "a", accuracy=reward, probability=0.5)
    assert router.stats().changes == 0


#: Stationary Bernoulli streams with the default detector: at most this many false alarms in
#: the 300 streams below (measured: see docs/learners.md; the GLR bound is delta = 1%).
FALSE_ALARMS = 0


def test_stationary_streams_raise_no_more_alarms_than_documented() -> None:
    alarms = 0
    for seed in range(100):
        for mean in (0.1, 0.5, 0.9):
            outcomes = random.Random(seed)
            router = Router(["a", "b"], seed=seed)
            for _ in range(2000):
                accuracy = float(outcomes.random() < mean)
                router.observe("x", "a", accuracy=accuracy, probability=0.5)
            alarms += router.stats().changes
    assert alarms <= FALSE_ALARMS


def test_warm_start_seeds_each_context_with_a_bounded_weight() -> None:
    router = Router(["big", "small"], policy=UCB(floor=0.0, detect_changes=None), seed=1)
    applied = router.warm_start(
        {"math": {"big": (0.9, 500), "small": (0.3, 4), "absent": (1.0, 9)}, "chat": {}}
    )
    assert applied == 10 + 4
    assert router.feedback_counts("math") == {"big": 10, "small": 4}
    assert router.select("math").model == "big"
    # Live evidence takes over: "big" now fails and "small" succeeds in this context.
    for _ in range(60):
        d = router.select("math")
        router.feedback(d, accuracy=0.0 if d.model == "big" else 1.0)
    assert [router.select("math").model for _ in range(5)] == ["small"] * 5


def test_warm_start_reads_routerbench_files(shared_data: Path) -> None:
    pool = ["gpt-4-1106-preview", "mistralai/mistral-7b-chat", "not-in-the-data"]
    router = Router(pool, seed=2)
    train = sorted((shared_data / "routerbench").glob("*_train.csv"))
    assert router.warm_start(train, weight=3) == 3 * 2 * 3  # contexts x models in the data
    assert sorted(router.contexts()) == ["arc-challenge", "mbpp", "winogrande"]
    counts = router.feedback_counts("mbpp")
    assert counts == {"gpt-4-1106-preview": 3, "mistralai/mistral-7b-chat": 3, "not-in-the-data": 0}


@pytest.mark.parametrize(
    ("source", "weight", "message"),
    [
        ({"x": {"a": (0.5,)}}, 10, r"expected \(accuracy, count\)"),
        ({"x": {"a": (0.5, 0)}}, 10, "count must be an int >= 1"),
        ({"x": {"zzz": (0.5, 3)}}, 10, "no outcome of any model of the pool"),
        ({"x": {"a": (0.5, 3)}}, 0, "weight must be an integer >= 1"),
    ],
)
def test_bad_warm_starts_are_refused_before_learning_anything(
    source: dict, weight: int, message: str
) -> None:
    router = Router(["a", "b"], seed=1)
    with pytest.raises(ConfigError, match=message):
        router.warm_start(source, weight=weight)
    assert router.contexts() == []


def test_detect_changes_takes_a_detector_its_settings_or_a_switch() -> None:
    assert UCB(detect_changes=False).detect_changes is None
    assert UCB(detect_changes=None).detect_changes is None
    assert UCB(detect_changes=True).detect_changes == ChangeDetector()
    assert ThompsonSampling(detect_changes={"delta": 0.05}).detect_changes == ChangeDetector(0.05)
    with pytest.raises(ConfigError, match="delta"):
        UCB(detect_changes={"delta": 2.0})
    # As a gateway's TOML or evaluate's JSON gives it, and back from the core.
    router = Router(["a", "b"], policy=UCB(detect_changes={"stride": 5}), seed=1)
    assert Router.restore(router.snapshot()).policy.detect_changes == ChangeDetector(stride=5)
