"""Issue 9 in the core: decisions know their router, bad decisions and names are clear errors,
extreme priors stay valid (every refusal leaves the snapshot bytes unchanged), and snapshots
taken while other threads learn are consistent."""

from __future__ import annotations

import pickle
import threading

import pytest

from pickllm import (
    ArgumentTypeError,
    ConfigError,
    Decision,
    DecisionError,
    EncodingError,
    LearningAutomaton,
    QLearning,
    Router,
)
from test_bad_input import MODELS, rejects

LONE = "caf\udce9"  # what os.fsdecode gives for invalid UTF-8 bytes: a str UTF-8 cannot encode


def trained() -> Router:
    """A router with some history and one decision pending in context "x"."""
    router = Router(MODELS, seed=3)
    for i in range(20):
        d = router.select("x" if i % 2 else "y")
        router.feedback(d, accuracy=float(d.model == "mid"))
    router.select("x")
    return router


@pytest.fixture
def router() -> Router:
    return trained()


def test_a_sibling_routers_decision_is_refused(router: Router) -> None:
    # Same models, same seed: the same decision ids, models and contexts.
    sibling = trained()
    theirs = sibling.select("x")
    ours = router.select("x")
    assert (theirs.id, theirs.model, theirs.context) == (ours.id, ours.model, ours.context)
    assert theirs.router == sibling.identity != router.identity == ours.router
    rejects(
        router,
        DecisionError,
        lambda: router.feedback(theirs, accuracy=1.0),
        "another router",
        str(sibling.identity),
    )
    # The refusal consumed nothing: both decisions still settle on their own routers.
    assert 0.0 <= router.feedback(ours, accuracy=1.0) <= 1.0
    assert 0.0 <= sibling.feedback(theirs, accuracy=1.0) <= 1.0


def test_restored_and_unpickled_routers_keep_their_identity(router: Router) -> None:
    pending = router.select("y")
    restored = Router.restore(router.snapshot())
    unpickled = pickle.loads(pickle.dumps(router))
    assert restored.identity == unpickled.identity == router.identity
    # The decision pending in the snapshot settles on each copy, once.
    for copy in (restored, unpickled):
        assert 0.0 <= copy.feedback(pending, accuracy=1.0) <= 1.0
        rejects(copy, DecisionError, lambda c=copy: c.feedback(pending, accuracy=1.0), "already")


@pytest.mark.parametrize(
    ("arguments", "error", "words"),
    [
        ((-1, "big", 0.5, "x"), DecisionError, "id must be an integer in [0, 2**64), got -1"),
        ((2**64, "big", 0.5, "x"), DecisionError, "id must be an integer"),
        ((1.0, "big", 0.5, "x"), ArgumentTypeError, "id must be an int, got float"),
        ((True, "big", 0.5, "x"), ArgumentTypeError, "id must be an int, got bool"),
        ((0, 5, 0.5, "x"), ArgumentTypeError, "model must be a str, got int"),
        ((0, "big", 0.5, None), ArgumentTypeError, "context must be a str, got NoneType"),
        ((0, "big", "0.5", "x"), ArgumentTypeError, "probability must be a number, got str"),
        ((0, "big", 0.0, "x"), DecisionError, "probability must be in (0, 1], got 0.0"),
        ((0, "big", float("nan"), "x"), DecisionError, "probability must be in (0, 1], got nan"),
        ((0, "big", 0.5, "x", -5), DecisionError, "router must be an integer in [0, 2**64)"),
        ((0, "big", 0.5, "x", "r"), ArgumentTypeError, "router must be an int, got str"),
        ((0, LONE, 0.5, "x"), EncodingError, "model must be text UTF-8 can encode"),
        ((0, "big", 0.5, LONE), EncodingError, "context must be text UTF-8 can encode"),
    ],
)
def test_bad_decisions_are_refused_when_built(
    arguments: tuple[object, ...], error: type[Exception], words: str
) -> None:
    with pytest.raises(error) as caught:
        Decision(*arguments)  # type: ignore[arg-type]
    assert words in str(caught.value)


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.select(LONE),
        lambda r: r.select("x", exclude=[LONE]),
        lambda r: r.select("x", allowed=["big", LONE]),
        lambda r: r.probabilities(LONE),
        lambda r: r.converged(LONE),
        lambda r: r.feedback_counts(LONE),
    ],
)
def test_lone_surrogates_are_a_clear_error(router: Router, call: object) -> None:
    caught = rejects(router, EncodingError, lambda: call(router), "UTF-8", "\\udce9")  # type: ignore[operator]
    assert isinstance(caught, ValueError)


def test_lone_surrogates_in_the_configuration_are_config_errors() -> None:
    for make in (lambda: Router(["big", LONE]), lambda: Router(["big"], default_context=LONE)):
        with pytest.raises(ConfigError, match="surrogate"):
            make()


def test_huge_priors_stay_on_the_simplex_and_snapshot() -> None:
    router = Router(["a", "b"], policy=LearningAutomaton(), prior={"a": 1e308, "b": 1e308}, seed=1)
    assert router.probabilities("new") == {"a": 0.5, "b": 0.5}
    d = router.select("new")
    router.feedback(d, accuracy=1.0)
    restored = Router.restore(router.snapshot())
    assert restored.snapshot() == router.snapshot()
    skewed = Router(
        ["a", "b", "c"],
        policy=LearningAutomaton(),
        prior={"a": 1.7e308, "b": 1.7e308, "c": 1.7e290},
        seed=1,
    )
    p = skewed.probabilities()
    assert p["a"] == p["b"] > p["c"] > 0.0
    assert abs(sum(p.values()) - 1.0) < 1e-12
    # Q-learning reads a prior as starting values in [0, 1]: 1e308 is refused.
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        Router(["a", "b"], policy=QLearning(), prior={"a": 1e308, "b": 1e308})
    assert LearningAutomaton() == router.policy


def test_snapshots_taken_while_other_threads_learn_are_each_one_consistent_moment() -> None:
    """snapshot() and save() run without the lock or the GIL while another thread routes: every
    snapshot restores, and the feedback it counts only grows from one snapshot to the next."""
    router = Router(MODELS, seed=5, max_pending=1_000)
    for i in range(5_000):
        router.feedback(router.select(f"tenant-{i}"), accuracy=0.5)
    done = threading.Event()
    applied: list[int] = []

    def learn() -> None:
        for i in range(20_000):
            router.feedback(router.select(f"tenant-{i % 6_000}"), accuracy=float(i % 2))
        applied.append(20_000)
        done.set()

    worker = threading.Thread(target=learn)
    worker.start()
    counts = []
    while not done.is_set() or len(counts) < 3:
        restored = Router.restore(router.snapshot())
        counts.append(sum(sum(restored.feedback_counts(c).values()) for c in restored.contexts()))
    worker.join()
    assert applied == [20_000]
    assert counts == sorted(counts)
    assert 5_000 <= counts[0] <= counts[-1] <= 25_000
    final = Router.restore(router.snapshot())
    assert sum(sum(final.feedback_counts(c).values()) for c in final.contexts()) == 25_000
