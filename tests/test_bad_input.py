"""Bad input: every rejected call raises a clear PickLLMError naming what was wrong, and leaves
the router's learned state exactly as it was (checked byte for byte through its snapshot)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from pickllm import (
    ArgumentTypeError,
    ConfigError,
    Decision,
    DecisionError,
    FeedbackError,
    LearningAutomaton,
    NoEligibleModelError,
    PickLLMError,
    QLearning,
    Reward,
    Router,
    SnapshotError,
    UnknownModelError,
)

MODELS = ["big", "mid", "small"]


@pytest.fixture(params=["automaton", "q_learning"])
def router(request: pytest.FixtureRequest) -> Router:
    """A router with some history and one decision pending in context "x"."""
    policy = LearningAutomaton(0.2) if request.param == "automaton" else QLearning(0.2)
    router = Router(MODELS, policy=policy, seed=3)
    for i in range(30):
        d = router.select("x" if i % 2 else "y")
        router.feedback(d, accuracy=float(d.model == "mid"), cost=0.001, latency=0.4)
    router.select("x")
    return router


def rejects(
    router: Router, error: type[Exception], call: Callable[[], Any], *words: str
) -> PickLLMError:
    """`call` raises `error` (a PickLLMError) mentioning `words`, and the state is unchanged."""
    before = router.snapshot()
    with pytest.raises(error) as caught:
        call()
    assert isinstance(caught.value, PickLLMError)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))
    assert router.snapshot() == before
    return caught.value


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("accuracy", math.nan, "nan"),
        ("accuracy", 1.5, "1.5"),
        ("accuracy", -0.1, "-0.1"),
        ("cost", -0.01, "-0.01"),
        ("cost", math.inf, "inf"),
        ("latency", -1.0, "-1"),
        ("latency", math.nan, "nan"),
    ],
)
def test_invalid_observations(router: Router, field: str, value: float, expected: str) -> None:
    decision = router.select("x")
    observation = {"accuracy": 0.5, "cost": 0.0, "latency": 0.1, field: value}
    error = rejects(
        router,
        FeedbackError,
        lambda: router.feedback(decision, **observation),
        field,
        expected,
    )
    assert isinstance(error, ValueError)
    # The decision is still redeemable after the rejected call.
    assert 0.0 <= router.feedback(decision, accuracy=0.5) <= 1.0


def test_wrong_types_in_feedback(router: Router) -> None:
    decision = router.select("x")
    rejects(router, ArgumentTypeError, lambda: router.feedback(decision, accuracy="high"))  # type: ignore[arg-type]
    rejects(router, ArgumentTypeError, lambda: router.feedback("d", accuracy=1.0))  # type: ignore[arg-type]
    assert isinstance(ArgumentTypeError("x"), TypeError)


def test_unknown_reused_forged_and_expired_decisions(router: Router) -> None:
    decision = router.select("x")
    unknown = Decision(10**9, decision.model, decision.probability, "x")
    rejects(router, DecisionError, lambda: router.feedback(unknown, accuracy=1.0), "never issued")
    other_model = next(m for m in MODELS if m != decision.model)
    forged = Decision(decision.id, other_model, decision.probability, "x")
    rejects(router, DecisionError, lambda: router.feedback(forged, accuracy=1.0), "model")
    moved = Decision(decision.id, decision.model, decision.probability, "y")
    rejects(router, DecisionError, lambda: router.feedback(moved, accuracy=1.0), "context")
    router.feedback(decision, accuracy=1.0)
    rejects(
        router, DecisionError, lambda: router.feedback(decision, accuracy=1.0), "already received"
    )

    small = Router(MODELS, max_pending=2, seed=1)
    first = small.select()
    small.select()
    small.select()
    rejects(
        small, DecisionError, lambda: small.feedback(first, accuracy=1.0), "expired", "max_pending"
    )


def test_unknown_models_and_empty_subsets(router: Router) -> None:
    rejects(router, UnknownModelError, lambda: router.select("x", exclude=["gpt-5"]), "gpt-5")
    rejects(router, UnknownModelError, lambda: router.select("x", allowed=["big", "nope"]), "nope")
    rejects(router, NoEligibleModelError, lambda: router.select("x", exclude=MODELS))
    rejects(router, NoEligibleModelError, lambda: router.select("new", allowed=[]))
    rejects(
        router, NoEligibleModelError, lambda: router.select("x", allowed=["big"], exclude=["big"])
    )
    rejects(router, ArgumentTypeError, lambda: router.select("x", exclude="big"), "exclude")
    rejects(router, ArgumentTypeError, lambda: router.select(42), "context")  # type: ignore[arg-type]
    assert "new" not in router.contexts()


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: Router([]), ["models"]),
        (lambda: Router(["a", "a"]), ["unique", "a"]),
        (lambda: Router("abc"), ["models"]),  # type: ignore[arg-type]
        (lambda: Router(["a", 3]), ["3"]),  # type: ignore[list-item]
        (lambda: Router(["a", ""]), ["models"]),
        (lambda: Router(["a", "b"], seed=-1), ["seed", "-1"]),
        (lambda: Router(["a", "b"], seed=2**64), ["seed"]),
        (lambda: Router(["a", "b"], max_pending=0), ["max_pending", "0"]),
        (lambda: Router(["a", "b"], prior={"a": 1.0}), ["prior", "b"]),
        (
            lambda: Router(["a", "b"], policy=LearningAutomaton(), prior={"a": 1.0, "b": 0.0}),
            ["prior", "0"],
        ),
        (lambda: Router(["a", "b"], prior={"a": 1.0, "b": math.nan}), ["prior", "nan"]),
        (lambda: Router(["a", "b"], prior={"a": 0.5, "b": 1.5}), ["prior", "1.5"]),
        (lambda: Router(["a", "b"], policy=QLearning(), prior={"a": 0.5, "b": 2.0}), ["prior"]),
        (lambda: Router(["a", "b"], policy=LearningAutomaton(0.1, threshold=0.5)), ["threshold"]),
        (lambda: LearningAutomaton(0.0), ["learning_rate", "0"]),
        (lambda: LearningAutomaton(1.5), ["learning_rate", "1.5"]),
        (lambda: LearningAutomaton(math.nan), ["learning_rate"]),
        (lambda: LearningAutomaton(0.1, threshold=1.2), ["threshold", "1.2"]),
        (lambda: LearningAutomaton("0.1"), ["learning_rate"]),  # type: ignore[arg-type]
        (lambda: QLearning(learning_rate=0.0), ["learning_rate"]),
        (lambda: QLearning(learning_rate="mean"), ["learning_rate"]),  # type: ignore[arg-type]
        (lambda: QLearning(epsilon=1.5), ["epsilon", "1.5"]),
        (lambda: QLearning(epsilon_decay=0.0), ["epsilon_decay"]),
        (lambda: QLearning(epsilon=0.1, epsilon_min=0.2), ["epsilon_min", "0.2"]),
        (lambda: QLearning(patience=0), ["patience"]),
        (lambda: QLearning(lock="yes"), ["lock"]),  # type: ignore[arg-type]
        (lambda: Reward(cost=-1.0), ["cost", "-1"]),
        (lambda: Reward(accuracy=0.0, cost=0.0, latency=0.0), ["weights"]),
        (lambda: Reward(max_cost=0.0), ["max_cost"]),
        (lambda: Reward(max_latency=math.inf), ["max_latency"]),
        (lambda: Reward(form="paper", latency=0.0), ["latency"]),
        (lambda: Reward(form="paper", latency_floor_ms=1.0), ["latency_floor_ms"]),
        (lambda: Reward(form="cubic"), ["form"]),  # type: ignore[arg-type]
        (lambda: Reward(bonus=1.0), ["bonus"]),  # type: ignore[call-arg]
    ],
)
def test_invalid_configuration(build: Callable[[], Any], words: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        build()
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_configuration_is_immutable() -> None:
    policy = LearningAutomaton(0.1)
    with pytest.raises(Exception, match="frozen"):
        policy.learning_rate = 0.5  # type: ignore[misc]
    assert policy.learning_rate == 0.1


def test_corrupted_snapshots(router: Router) -> None:
    blob = router.snapshot()
    flipped = bytearray(blob)
    flipped[-5] ^= 0x01
    newer = bytearray(blob)
    newer[8] = 9
    cases = [
        (b"", "empty"),
        (blob[:10], "truncated"),
        (blob[:-1], "truncated"),
        (blob + b"\x00", "trailing"),
        (bytes(flipped), "checksum"),
        (bytes(newer), "newer"),
        (b"X" + blob[1:], "magic"),
    ]
    for bad, word in cases:
        with pytest.raises(SnapshotError, match=word):
            Router.restore(bad)
    with pytest.raises(ArgumentTypeError):
        Router.restore("not bytes")  # type: ignore[arg-type]
    # The router the snapshot came from is untouched and still works.
    assert router.snapshot() == blob
