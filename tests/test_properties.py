"""Properties that hold for any sequence of rewards, contexts and exclusions (hypothesis)."""

from __future__ import annotations

import pickle

import hypothesis.strategies as st
from hypothesis import given

from pickllm import (
    UCB,
    ChangeDetector,
    Decision,
    Exp3,
    LearningAutomaton,
    Policy,
    QLearning,
    Reward,
    Router,
    ThompsonSampling,
)

MODELS = ["a", "b", "c", "d"]

policies = st.one_of(
    st.builds(
        LearningAutomaton,
        learning_rate=st.floats(0.001, 1.0),
        threshold=st.floats(0.26, 1.0),
        lock=st.booleans(),
    ),
    st.builds(
        QLearning,
        learning_rate=st.one_of(st.floats(0.001, 1.0), st.just("sample_average")),
        epsilon=st.floats(0.0, 1.0),
        epsilon_decay=st.floats(0.5, 1.0),
        epsilon_min=st.just(0.0),
        patience=st.integers(1, 20),
        share=st.floats(0.0, 20.0),
        lock=st.booleans(),
    ),
    st.builds(
        ThompsonSampling,
        discount=st.floats(0.5, 1.0),
        prior=st.tuples(st.floats(0.1, 10.0), st.floats(0.1, 10.0)),
        threshold=st.floats(0.26, 1.0),
        share=st.floats(0.0, 20.0),
        lock=st.booleans(),
        floor=st.floats(0.0, 0.5),
        detect_changes=st.one_of(st.none(), st.builds(ChangeDetector, st.floats(0.001, 0.5))),
    ),
    st.builds(
        UCB,
        exploration=st.floats(0.01, 4.0),
        discount=st.floats(0.5, 1.0),
        bound=st.sampled_from(["kl", "tuned"]),
        share=st.floats(0.0, 20.0),
        lock=st.booleans(),
        floor=st.floats(0.0, 0.5),
        detect_changes=st.one_of(
            st.none(), st.builds(ChangeDetector, st.floats(0.001, 0.5), st.integers(1, 5))
        ),
    ),
    st.builds(
        Exp3,
        gamma=st.floats(0.01, 1.0),
        discount=st.floats(0.5, 1.0),
        threshold=st.floats(0.26, 1.0),
        share=st.floats(0.0, 500.0),
        lock=st.booleans(),
    ),
)
observations = st.tuples(
    st.sampled_from(["x", "y", "z"]),
    st.floats(0.0, 1.0),  # accuracy
    st.floats(0.0, 0.1),  # cost (USD)
    st.floats(0.0, 30.0),  # latency (s)
)
steps = st.lists(observations, max_size=120)


def play(router: Router, plan: list[tuple[str, float, float, float]]) -> list[Decision]:
    decisions = []
    for context, accuracy, cost, latency in plan:
        d = router.select(context)
        router.feedback(d, accuracy=accuracy, cost=cost, latency=latency)
        decisions.append(d)
    return decisions


@given(policy=policies, plan=steps, seed=st.integers(0, 2**64 - 1))
def test_probabilities_stay_on_the_simplex(policy: Policy, plan: list, seed: int) -> None:
    router = Router(MODELS, policy=policy, seed=seed)
    for context, accuracy, cost, latency in plan:
        d = router.select(context)
        assert 0.0 < d.probability <= 1.0
        reward = router.feedback(d, accuracy=accuracy, cost=cost, latency=latency)
        assert 0.0 <= reward <= 1.0
        p = router.probabilities(context)
        assert all(0.0 <= v <= 1.0 for v in p.values())
        assert abs(sum(p.values()) - 1.0) < 1e-9


@given(policy=policies, plan=steps, seed=st.integers(0, 2**64 - 1))
def test_same_seed_same_decisions(policy: Policy, plan: list, seed: int) -> None:
    first = play(Router(MODELS, policy=policy, seed=seed), plan)
    second = play(Router(MODELS, policy=policy, seed=seed), plan)
    # The same decisions, issued by two routers with identities of their own.
    fields = [(d.id, d.model, d.probability, d.context) for d in first]
    assert fields == [(d.id, d.model, d.probability, d.context) for d in second]
    assert {d.router for d in first}.isdisjoint({d.router for d in second})


@given(policy=policies, prefix=steps, suffix=steps, seed=st.integers(0, 2**64 - 1))
def test_snapshot_round_trip_gives_identical_future_decisions(
    policy: Policy, prefix: list, suffix: list, seed: int
) -> None:
    original = Router(MODELS, policy=policy, seed=seed)
    play(original, prefix)
    unanswered = original.select("x")
    restored = Router.restore(original.snapshot())
    unpickled = pickle.loads(pickle.dumps(original))
    assert restored.snapshot() == original.snapshot() == unpickled.snapshot()
    # The pending decision can be answered on the restored router, once.
    assert restored.feedback(unanswered, accuracy=1.0) == original.feedback(
        unanswered, accuracy=1.0
    )
    assert play(restored, suffix) == play(original, suffix)
    assert restored.probabilities("y") == original.probabilities("y")


@given(
    policy=policies,
    plan=steps,
    excluded=st.lists(st.sets(st.sampled_from(MODELS), max_size=3), min_size=1),
    seed=st.integers(0, 2**64 - 1),
)
def test_excluded_models_are_never_selected(
    policy: Policy, plan: list, excluded: list[set[str]], seed: int
) -> None:
    router = Router(MODELS, policy=policy, seed=seed)
    for i, (context, accuracy, cost, latency) in enumerate(plan or [("x", 1.0, 0.0, 0.0)]):
        exclude = excluded[i % len(excluded)]
        d = router.select(context, exclude=exclude)
        assert d.model not in exclude
        router.feedback(d, accuracy=accuracy, cost=cost, latency=latency)
        allowed = sorted(set(MODELS) - exclude)
        d = router.select(context, allowed=allowed[:1])
        assert d.model == allowed[0]
        router.feedback(d, accuracy=accuracy, cost=cost, latency=latency)


@given(policy=policies, plan=steps, seed=st.integers(0, 2**64 - 1))
def test_feedback_counts_add_up(policy: Policy, plan: list, seed: int) -> None:
    router = Router(MODELS, policy=policy, seed=seed)
    decisions = play(router, plan)
    for context in {"x", "y", "z"}:
        counts = router.feedback_counts(context)
        assert sum(counts.values()) == sum(d.context == context for d in decisions)
        for model in MODELS:
            assert counts[model] == sum(
                d.context == context and d.model == model for d in decisions
            )
    assert router.pending == 0


@given(accuracy=st.floats(0.0, 1.0), cost=st.floats(0.0, 1.0), latency=st.floats(0.0, 100.0))
def test_rewards_are_in_the_unit_interval_for_both_forms(
    accuracy: float, cost: float, latency: float
) -> None:
    for reward in (Reward(), Reward(form="paper", cost=1.0, latency=1.0)):
        assert 0.0 <= reward.compute(accuracy=accuracy, cost=cost, latency=latency) <= 1.0
