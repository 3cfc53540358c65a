"""Bounded contexts: `Router(max_contexts=...)` evicts by learning events only, counts what it
lets go, settles decisions whose context was evicted, and snapshots keep order and counts."""

from __future__ import annotations

import pickle

import pytest

from pickllm import ConfigError, ContextStats, PickLLMError, Router


def learn(router: Router, context: str, model: str = "a") -> None:
    """One learning event in ``context``: a decision forced onto ``model`` and its feedback."""
    d = router.select(context=context, allowed=[model])
    router.feedback(d, accuracy=1.0)


def test_learned_contexts_are_evicted_least_recently_learned_first() -> None:
    router = Router(["a", "b"], seed=1, max_contexts=3)
    for context in ["x", "y", "z", "x", "w"]:
        learn(router, context)
    # y learned least recently (x learned again after it): it is the one evicted.
    assert router.contexts() == ["z", "x", "w"]
    assert router.stats() == ContextStats(
        contexts=3, learned=3, unlearned=0, evicted=1, dropped=0, max_contexts=3
    )
    assert router.feedback_counts("x") == {"a": 2, "b": 0}
    assert router.feedback_counts("y") == {"a": 0, "b": 0}  # re-created from the prior


def test_selections_cannot_evict_learned_contexts() -> None:
    router = Router(["a", "b"], seed=2, max_contexts=2)
    learn(router, "x")
    learn(router, "y")
    for i in range(1000):
        router.select(context=f"visitor-{i}")
        router.select(context="x")  # selecting a learned context does not refresh it either
    assert router.contexts() == ["x", "y", "visitor-998", "visitor-999"]
    assert router.stats() == ContextStats(
        contexts=4, learned=2, unlearned=2, evicted=0, dropped=998, max_contexts=2
    )
    learn(router, "z")  # learning is what orders them: x, learned first, goes
    assert router.contexts()[:2] == ["y", "z"]
    assert router.stats().evicted == 1


def test_learned_state_is_a_function_of_the_learning_events() -> None:
    events = [("p", "a"), ("q", "b"), ("p", "b"), ("r", "a"), ("s", "a"), ("q", "a"), ("t", "b")]
    quiet = Router(["a", "b"], seed=3, max_contexts=3)
    busy = Router(["a", "b"], seed=4, max_contexts=3)
    for i, (context, model) in enumerate(events):
        learn(quiet, context, model)
        for j in range(5):
            busy.select(context=f"only-selected-{i}-{j}")
            busy.select(context=events[j % (i + 1)][0])
        learn(busy, context, model)
    learned = quiet.stats().learned
    assert learned == busy.stats().learned == 3
    assert quiet.contexts()[:learned] == busy.contexts()[:learned] == ["s", "q", "t"]
    for context in ["s", "q", "t"]:
        assert quiet.probabilities(context) == busy.probabilities(context)
        assert quiet.feedback_counts(context) == busy.feedback_counts(context)
    assert quiet.stats().evicted == busy.stats().evicted == 3


def test_a_decision_whose_context_was_evicted_settles_into_it_by_name() -> None:
    router = Router(["a", "b"], seed=5, max_contexts=1)
    early = router.select(context="x")
    learn(router, "y")
    learn(router, "z")  # y evicted; x, never learned, dropped by the selections after it
    assert "x" not in router.contexts()
    assert router.pending == 1
    assert 0.0 <= router.feedback(early, accuracy=1.0) <= 1.0
    assert router.pending == 0
    assert router.contexts() == ["x"]
    assert sum(router.feedback_counts("x").values()) == 1
    with pytest.raises(PickLLMError):
        router.feedback(early, accuracy=1.0)  # settled exactly once


def test_snapshot_and_pickle_keep_order_and_counts() -> None:
    router = Router(["a", "b"], seed=6, max_contexts=2)
    for context in ["x", "y", "z", "y"]:
        learn(router, context)
    router.select(context="s1")
    router.select(context="s2")
    router.select(context="s3")
    waiting = router.select(context="z")
    learn(router, "w")  # its selection drops s2; its feedback evicts z, `waiting` pending on it
    for copy in (Router.restore(router.snapshot()), pickle.loads(pickle.dumps(router))):
        assert copy.contexts() == router.contexts() == ["y", "w", "s3"]
        assert copy.stats() == router.stats()
        assert copy.stats() == ContextStats(
            contexts=3, learned=2, unlearned=1, evicted=2, dropped=2, max_contexts=2
        )
        copy.feedback(waiting, accuracy=0.5)
        assert copy.contexts()[:2] == ["w", "z"]


def test_unbounded_with_none() -> None:
    router = Router(["a", "b"], seed=7, max_contexts=None)
    for i in range(3000):
        learn(router, f"tenant-{i}")
    assert router.stats() == ContextStats(
        contexts=3000, learned=3000, unlearned=0, evicted=0, dropped=0, max_contexts=None
    )
    assert Router.restore(router.snapshot()).stats().max_contexts is None


def test_bounded_by_default() -> None:
    assert Router(["a", "b"], seed=8).stats().max_contexts == 1_000_000


@pytest.mark.parametrize("bad", [0, -1, 2**31 + 1, 1.5, True, "10", [3]])
def test_bad_max_contexts_is_refused_clearly(bad: object) -> None:
    with pytest.raises(ConfigError, match="max_contexts must be an integer in \\[1, 2\\*\\*31\\]"):
        Router(["a", "b"], max_contexts=bad)  # type: ignore[arg-type]
