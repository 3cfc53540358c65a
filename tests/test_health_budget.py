"""The circuit breaker and budgets of the route loop, against a real local server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import pytest

from model_farm import answer, fail, model_farm
from pickllm import (
    Budget,
    BudgetExceeded,
    CircuitBreaker,
    ConfigError,
    LearningAutomaton,
    Model,
    OpenAICompatible,
    Router,
)
from pickllm.health import Health
from pickllm.scorers import MultipleChoice

QUESTION = "2 + 2?\nA) 3\nB) 4"

Pool = Callable[..., list[Model]]


@pytest.fixture
def pool() -> Iterator[Pool]:
    backends: list[OpenAICompatible] = []

    def make(url: str, *specs: tuple[str, float, float]) -> list[Model]:
        backend = OpenAICompatible(base_url=url, api_key="sk-test", timeout=5.0)
        backends.append(backend)
        return [
            Model(name, backend=backend, input_price=p_in, output_price=p_out, max_tokens=8)
            for name, p_in, p_out in specs
        ]

    yield make
    for backend in backends:
        backend.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ==================== Circuit breaker ====================


def test_breaker_opens_after_consecutive_failures_then_probes_half_open() -> None:
    clock = Clock()
    health = Health(CircuitBreaker(failures=3, cooldown=10.0), ["a", "b"], clock)
    for _ in range(2):
        health.failed("a")
    assert health.blocked() == {}
    health.failed("a")
    assert "circuit open" in health.blocked()["a"]
    clock.now += 9.9
    assert health.state("a") == "open"
    clock.now += 0.2
    assert health.state("a") == "half_open"
    assert health.blocked() == {}
    health.started("a")  # the one trial call
    assert "half-open" in health.blocked()["a"]
    health.failed("a")  # the probe failed: open again for a whole cooldown
    assert health.state("a") == "open"
    clock.now += 10.1
    health.started("a")
    health.succeeded("a")
    assert health.state("a") == "closed"
    assert health.blocked() == {}


def test_breaker_opens_on_failure_rate() -> None:
    health = Health(CircuitBreaker(failures=100, failure_rate=0.5, window=6, min_calls=4), ["a"])
    for outcome in (True, False, True):
        health.failed("a") if outcome else health.succeeded("a")
    assert health.state("a") == "closed", "3 calls: below min_calls"
    health.succeeded("a")
    assert health.state("a") == "closed", "2 failures of 4: rate 0.5 reached only with this"
    health.failed("a")
    assert health.state("a") == "open", "3 of 5 failed"


def test_breaker_without_config_still_honours_retry_after() -> None:
    clock = Clock()
    health = Health(None, ["a"], clock)
    for _ in range(50):
        health.failed("a")
    assert health.blocked() == {}
    health.hold("a", 5.0)
    assert health.state("a") == "open"
    clock.now += 5.1
    assert health.state("a") == "closed"


def test_router_stops_calling_a_dead_model_and_probes_it_later(pool: Pool) -> None:
    with model_farm({"down": fail(500), "up": answer("B")}) as farm:
        router = Router(
            pool(farm.url, ("down", 1.0, 1.0), ("up", 1.0, 1.0)),
            policy=LearningAutomaton(),
            prior={"down": 1000.0, "up": 1.0},
            scorer=MultipleChoice(),
            breaker=CircuitBreaker(failures=2, cooldown=0.3),
            seed=0,
        )
        for _ in range(2):
            assert router.route(QUESTION, reference="B").model == "up"
        assert farm.calls["down"] == 2
        assert router.health()["down"] == "open"
        for _ in range(5):
            result = router.route(QUESTION, reference="B")
            assert [a.model for a in result.attempts] == ["up"]
        assert farm.calls["down"] == 2, "an open circuit must not be called"
        time.sleep(0.35)
        assert router.health()["down"] == "half_open"
        result = router.route(QUESTION, reference="B")
        assert result.attempts[0].model == "down", "the half-open probe"
        assert farm.calls["down"] == 3
        assert router.health()["down"] == "open"


# ==================== Budgets ====================


def route_until_exhausted(router: Router, context: str) -> tuple[list[float], str]:
    """Route in ``context`` until the budget refuses; returns the costs charged and why."""
    costs: list[float] = []
    while len(costs) < 1000:
        try:
            costs.append(router.route(QUESTION, context=context, reference="B").cost)
        except BudgetExceeded as error:
            return costs, str(error)
    raise AssertionError("the budget never ran out")


def test_per_context_budget_is_exact_and_never_exceeded(pool: Pool) -> None:
    # Prices per million tokens; the server reports 12 input and 5 output tokens per call.
    with model_farm({"a": answer("B"), "b": answer("B")}) as farm:
        models = pool(farm.url, ("a", 2000.0, 4000.0), ("b", 1000.0, 3000.0))
        cap = 0.5
        router = Router(models, scorer=MultipleChoice(), budget=Budget(per_context=cap), seed=1)
        costs, why = route_until_exhausted(router, "s1")
        assert "worst-case cost" in why
        spent = router.spent("s1")
        assert Fraction(spent) == Fraction(float(sum(map(Fraction, costs))))
        assert spent <= cap
        assert len(costs) == farm.calls["a"] + farm.calls["b"]
        # Another context has its own budget.
        assert router.route(QUESTION, context="s2", reference="B").cost > 0
        assert router.spent("s1") == spent


def test_an_expensive_model_is_left_out_once_it_no_longer_fits(pool: Pool) -> None:
    with model_farm({"dear": answer("B"), "cheap": answer("B")}) as farm:
        models = pool(farm.url, ("dear", 20000.0, 40000.0), ("cheap", 10.0, 10.0))
        router = Router(
            models,
            policy=LearningAutomaton(),
            prior={"dear": 1000.0, "cheap": 1.0},
            scorer=MultipleChoice(),
            budget=Budget(total=1.5),
            seed=3,
        )
        results = [router.route(QUESTION, context=f"c{i}", reference="B") for i in range(40)]
        models_used = [r.model for r in results]
        # "dear" costs 0.44 USD a call (12*0.02 + 5*0.04) against a bound of 0.96 (12+... bytes):
        # it is chosen while its bound fits, then only "cheap" is.
        assert models_used[0] == "dear"
        assert models_used[-10:] == ["cheap"] * 10
        assert router.spent() <= 1.5
        assert Fraction(router.spent()) == Fraction(float(sum(Fraction(r.cost) for r in results)))


def test_concurrent_calls_cannot_jointly_overspend(pool: Pool) -> None:
    with model_farm({"a": answer("B"), "b": fail(503)}) as farm:
        models = pool(farm.url, ("a", 1000.0, 1000.0), ("b", 1000.0, 1000.0))
        cap = 0.2
        router = Router(
            models, scorer=MultipleChoice(), budget=Budget(total=cap), seed=5, breaker=None
        )

        async def one() -> float | None:
            try:
                return (await router.aroute(QUESTION, reference="B")).cost
            except BudgetExceeded:
                return None

        async def main() -> list[float | None]:
            results = await asyncio.gather(*(one() for _ in range(100)))
            await router.aclose()
            return results

        costs = [c for c in asyncio.run(main()) if c is not None]
        assert costs, "some calls fit"
        assert router.spent() <= cap
        assert Fraction(router.spent()) == Fraction(float(sum(map(Fraction, costs))))
        assert farm.calls["a"] == len(costs), "every successful call was charged once"


def test_budget_configuration_errors(pool: Pool) -> None:
    with pytest.raises(ConfigError, match="per_context, total"):
        Budget()
    with pytest.raises(ConfigError, match="total"):
        Budget(total=-1.0)
    with pytest.raises(ConfigError, match="min_calls"):
        CircuitBreaker(window=5, min_calls=6)
    backend = OpenAICompatible(base_url="http://127.0.0.1:9/v1", api_key="x")
    unbounded = [Model("m", backend=backend)]
    with pytest.raises(ConfigError, match="max_tokens"):
        Router(unbounded, budget=Budget(total=1.0))
    with pytest.raises(ConfigError, match="budget"):
        Router(["m"], budget=Budget(total=1.0))
    backend.close()
