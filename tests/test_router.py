"""The Router facade: decisions, inspection, lock-in, priors, persistence and repr."""

from __future__ import annotations

import copy
import pickle

import pytest

from pickllm import Decision, LearningAutomaton, QLearning, Reward, Router, __version__, _core


def test_decision_is_a_plain_immutable_record() -> None:
    router = Router(["a", "b"], seed=1)
    d = router.select("finance")
    assert (d.context, d.probability) == ("finance", 0.5)
    assert d.model in ("a", "b")
    assert d.router == router.identity
    assert repr(d) == (
        f"Decision(id=0, model={d.model!r}, probability=0.5, context='finance', "
        f"router={router.identity})"
    )
    rebuilt = Decision(d.id, d.model, d.probability, d.context, router.identity)
    assert rebuilt == d
    assert hash(rebuilt) == hash(d)
    assert rebuilt != Decision(d.id + 1, d.model, d.probability, d.context, router.identity)
    assert rebuilt != Decision(d.id, d.model, d.probability, d.context)
    assert pickle.loads(pickle.dumps(d)) == d
    with pytest.raises(AttributeError):
        d.model = "b"  # type: ignore[misc]
    # A decision rebuilt from its fields (say, from a log line) is accepted as feedback.
    assert router.feedback(rebuilt, accuracy=1.0) == 1.0
    # So is one rebuilt without its router, checked by id, model and context only.
    unsigned = router.select("finance")
    assert unsigned.router is not None
    plain = Decision(unsigned.id, unsigned.model, unsigned.probability, unsigned.context)
    assert plain.router is None
    assert router.feedback(plain, accuracy=1.0) == 1.0


def test_default_context_and_fresh_contexts() -> None:
    router = Router(["a", "b", "c", "d"], seed=2, default_context="main")
    assert router.probabilities("never-seen") == dict.fromkeys("abcd", 0.25)
    assert router.converged("never-seen") is None
    assert router.feedback_counts() == dict.fromkeys("abcd", 0)
    assert router.contexts() == []  # reading does not create contexts
    d = router.select()
    assert d.context == "main"
    router.feedback(d, accuracy=1.0)
    assert router.contexts() == ["main"]
    assert router.feedback_counts()[d.model] == 1


def test_prior_sets_the_starting_point() -> None:
    router = Router(["a", "b"], policy=LearningAutomaton(), prior={"a": 3.0, "b": 1.0}, seed=0)
    assert router.probabilities("x") == {"a": 0.75, "b": 0.25}
    q = Router(["a", "b"], policy=QLearning(epsilon=0.2), prior={"a": 0.9, "b": 0.1}, seed=0)
    assert q.probabilities("x") == pytest.approx({"a": 0.9, "b": 0.1})


def test_lock_in_stops_learning_and_lock_false_keeps_learning() -> None:
    accuracy_only = Reward(accuracy=1.0, cost=0.0, latency=0.0)
    locked = Router(["a", "b"], policy=LearningAutomaton(0.5, 0.9), reward=accuracy_only, seed=4)
    free = Router(
        ["a", "b"], policy=LearningAutomaton(0.5, 0.9, lock=False), reward=accuracy_only, seed=4
    )
    for router in (locked, free):
        while router.converged() is None:
            d = router.select()
            router.feedback(d, accuracy=float(d.model == "b"))
        assert router.converged() == "b"
    assert locked.probabilities() == {"a": 0.0, "b": 1.0}
    d = locked.select()
    assert (d.model, d.probability) == ("b", 1.0)
    locked.feedback(d, accuracy=0.0)
    assert locked.probabilities() == {"a": 0.0, "b": 1.0}
    # Excluding the locked model falls back to the learned distribution over the rest.
    assert locked.select(exclude=["b"]).model == "a"
    # Without the lock, enough reward for "a" moves the session over.
    for _ in range(200):
        d = free.select(allowed=["a"])
        free.feedback(d, accuracy=1.0)
    assert free.converged() == "a"


def test_select_probability_is_renormalized_over_the_subset() -> None:
    router = Router(
        ["a", "b", "c"], policy=LearningAutomaton(), prior={"a": 2.0, "b": 1.0, "c": 1.0}, seed=0
    )
    d = router.select("x", exclude=["a"])
    assert d.model in ("b", "c")
    assert d.probability == pytest.approx(0.5)
    d = router.select("x", allowed=["a", "b"], exclude=["b"])
    assert (d.model, d.probability) == ("a", 1.0)


def test_paper_reward_form_through_the_router() -> None:
    reward = Reward(form="paper", accuracy=1.0, cost=1.0, latency=1.0, latency_floor_ms=10.0)
    router = Router(["a", "b"], reward=reward, seed=0)
    d = router.select()
    # 1 s = 1000 ms: log10 = 3 against log10(10) = 1 at the top of the range.
    assert router.feedback(d, accuracy=1.0, cost=0.0, latency=1.0) == pytest.approx(1 / 3)
    assert Router.restore(router.snapshot()).reward == reward


def test_restore_and_copy_keep_configuration() -> None:
    policy = QLearning("sample_average", epsilon=0.3, epsilon_decay=0.9, epsilon_min=0.05)
    reward = Reward(accuracy=2.0, cost=1.0, latency=0.0, max_cost=0.05)
    router = Router(["x", "y"], policy=policy, reward=reward, seed=9, default_context="c")
    router.feedback(router.select(), accuracy=0.5)
    for clone in (Router.restore(router.snapshot()), copy.deepcopy(router)):
        assert clone.models == ("x", "y")
        assert clone.policy == policy
        assert clone.reward == reward
        assert clone.select().context == "c"
    assert router.snapshot()[:8] == b"PICKLLM\x00"
    assert _core.SNAPSHOT_FORMAT_VERSION == 3


def test_repr_is_useful() -> None:
    router = Router(["a", "b"], policy=LearningAutomaton(0.05), seed=0)
    router.select("x")
    assert repr(router) == (
        "Router(models=['a', 'b'], policy=LearningAutomaton(learning_rate=0.05, threshold=0.99, "
        "lock=True), contexts=1, pending=1)"
    )
    assert __version__ == _core.__version__


def test_unseeded_routers_differ() -> None:
    # Without a seed each router draws its own: 50 first picks from 8 models all equal has
    # probability 8 * (1/8)^50.
    picks = {Router(list("abcdefgh")).select().model for _ in range(50)}
    assert len(picks) > 1
