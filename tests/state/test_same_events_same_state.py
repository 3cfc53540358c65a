"""Learned state is a function of the ordered feedback events alone, for every learner.

Two routers with different seeds, different local selections and different context tables,
fed the same observations in the same order, hold the same learned part: one learns from each
observation directly, the other as a shared-state replica does (its feedback settles without
learning and queues an event in its outbox; it learns from the encoded stream entries it applies,
its own included). A third that installs the first's learned part agrees too. Policies
come from ``POLICIES``, which must cover every member of ``pickllm.config.Policy``: a new learner
fails ``test_every_learner_is_covered`` until it is added here, and then meets the property.
"""

from __future__ import annotations

import typing

from hypothesis import given
from hypothesis import strategies as st

from pickllm import UCB, Exp3, LearningAutomaton, QLearning, Router, ThompsonSampling
from pickllm.config import Policy

MODELS = ["a", "b", "c"]
CONTEXTS = ["x", "y", "z"]

POLICIES: dict[type, st.SearchStrategy[Policy]] = {
    LearningAutomaton: st.builds(
        LearningAutomaton,
        learning_rate=st.floats(0.01, 1.0),
        threshold=st.floats(0.5, 0.999),
        lock=st.booleans(),
    ),
    QLearning: st.builds(
        QLearning,
        learning_rate=st.one_of(st.floats(0.01, 1.0), st.just("sample_average")),
        epsilon=st.just(0.5),
        epsilon_decay=st.floats(0.5, 1.0),
        epsilon_min=st.floats(0.0, 0.5),
        patience=st.integers(1, 20),
        share=st.floats(0.0, 20.0),
        lock=st.booleans(),
    ),
    ThompsonSampling: st.builds(
        ThompsonSampling,
        discount=st.floats(0.5, 1.0),
        prior=st.tuples(st.floats(0.1, 10.0), st.floats(0.1, 10.0)),
        threshold=st.floats(0.5, 0.999),
        share=st.floats(0.0, 20.0),
        lock=st.booleans(),
    ),
    UCB: st.builds(
        UCB,
        exploration=st.floats(0.01, 4.0),
        discount=st.floats(0.5, 1.0),
        bound=st.sampled_from(["kl", "tuned"]),
        share=st.floats(0.0, 20.0),
        lock=st.booleans(),
    ),
    Exp3: st.builds(
        Exp3,
        gamma=st.floats(0.01, 1.0),
        discount=st.floats(0.5, 1.0),
        threshold=st.floats(0.5, 0.999),
        share=st.floats(0.0, 500.0),
        lock=st.booleans(),
    ),
}

observations = st.lists(
    st.tuples(
        st.sampled_from(CONTEXTS),
        st.sampled_from(MODELS),
        st.floats(0.0, 1.0),
        st.floats(0.0, 0.05),
        st.floats(0.0, 20.0),
        st.one_of(st.none(), st.floats(0.01, 1.0)),
    ),
    max_size=300,
)


def test_every_learner_is_covered() -> None:
    assert set(typing.get_args(Policy)) == set(POLICIES)


@given(
    policy=st.one_of(*POLICIES.values()),
    events=observations,
    seeds=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    local=st.lists(st.sampled_from([*CONTEXTS, "elsewhere"]), max_size=20),
)
def test_same_events_same_state(
    policy: Policy,
    events: list[tuple[str, str, float, float, float, float | None]],
    seeds: tuple[int, int],
    local: list[str],
) -> None:
    one = Router(MODELS, policy=policy, seed=seeds[0])
    two = Router(MODELS, policy=policy, seed=seeds[1])
    outbox = two._core.share("two", 1000)
    learned = 0
    for i, (context, model, accuracy, cost, latency, probability) in enumerate(events):
        if i < len(local):  # selections on one replica only, interleaved with the events
            decision = two.select(local[i])
            # Settled without learning; its event is learned from the stream, by one as well.
            local_reward = two.feedback(decision, accuracy=1.0)
            assert local_reward == one.observe(
                decision.context, decision.model, accuracy=1.0, probability=decision.probability
            )
            learned += 1
        # The propensity is part of the event (Exp3 weights by it): both apply the same one.
        rewards = [
            router.observe(
                context,
                model,
                accuracy=accuracy,
                cost=cost,
                latency=latency,
                probability=probability,
            )
            for router in (one, two)
        ]
        assert rewards[0] == rewards[1]
        learned += 1
    entries, count = outbox.take(1000, 7, 0.0)
    assert count == learned
    seen: dict[str, int] = {}
    for entry in entries:
        assert two._core.apply_entry(entry, seen) == (min(7, count), 0, 0)
        count -= 7
    assert one._core.learned() == two._core.learned()
    for context in [*CONTEXTS, "elsewhere"]:
        assert one.probabilities(context) == two.probabilities(context)
        assert one.feedback_counts(context) == two.feedback_counts(context)
    three = Router(MODELS, policy=policy, seed=seeds[0] ^ 1)
    three._core.restore_learned(one._core.learned())
    assert three._core.learned() == one._core.learned()
    assert sum(sum(one.feedback_counts(c).values()) for c in [*CONTEXTS, "elsewhere"]) == learned
