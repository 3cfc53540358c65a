"""Router.route and aroute against a real local OpenAI-compatible server with scripted models:
pricing, scoring, feedback, fallbacks by ranking, Retry-After cooldowns, total failure."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator

import pytest

from model_farm import Behaviour, answer, fail, model_farm
from pickllm import ConfigError, LearningAutomaton, Router
from pickllm.backends import OpenAICompatible
from pickllm.models import Model
from pickllm.routing import AllModelsFailedError, RouteResult
from pickllm.scorers import MultipleChoice

Pool = Callable[..., list[Model]]


@pytest.fixture
def pool() -> Iterator[Pool]:
    """Models served by one OpenAI-compatible backend at a URL; backends closed afterwards."""
    backends: list[OpenAICompatible] = []

    def make(url: str, *names: str) -> list[Model]:
        backend = OpenAICompatible(base_url=url, api_key="sk-test", timeout=5.0)
        backends.append(backend)
        return [Model(name, backend=backend, input_price=1.0, output_price=2.0) for name in names]

    yield make
    for backend in backends:
        backend.close()


def test_route_prices_scores_and_learns(pool: Pool) -> None:
    with model_farm({"a": answer("The answer is B."), "b": answer("It is (C)")}) as farm:
        router = Router(pool(farm.url, "a", "b"), scorer=MultipleChoice(), seed=1)
        result = router.route("2+2?\nA) 3\nB) 4\nC) 5", context="math", reference="B")
        assert result.model in ("a", "b")
        assert result.accuracy == (1.0 if result.model == "a" else 0.0)
        # 12 input and 5 output tokens at $1 and $2 per million.
        assert result.cost == pytest.approx((12 * 1.0 + 5 * 2.0) / 1e6)
        assert not result.cost_estimated
        assert (result.input_tokens, result.output_tokens) == (12, 5)
        assert result.latency > 0
        assert result.reward is not None
        assert 0 <= result.reward <= 1
        assert router.feedback_counts("math")[result.model] == 1
        assert farm.calls[result.model] == 1
        assert [a.model for a in result.attempts] == [result.model]
        # Built in one step by the route loop, it is the dataclass its constructor builds.
        fields = {f.name: getattr(result, f.name) for f in dataclasses.fields(RouteResult)}
        assert vars(result) == fields
        assert result == RouteResult(**fields)
        assert hash(result) == hash(RouteResult(**fields))
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.cost = 0.0  # type: ignore[misc]


def test_failed_calls_fall_back_by_ranking_and_count_as_zero_accuracy(pool: Pool) -> None:
    behaviours = {"broken": fail(500), "garbage": Behaviour(body=b"not json"), "good": answer("B")}
    with model_farm(behaviours) as farm:
        router = Router(
            pool(farm.url, "broken", "garbage", "good"),
            policy=LearningAutomaton(),
            prior={
                "broken": 1000.0,
                "garbage": 10.0,
                "good": 1.0,
            },  # ranking: broken, garbage, good
            scorer=MultipleChoice(),
            seed=3,
        )
        result = router.route("Pick one.\nA) x\nB) y", reference="B")
        assert [a.model for a in result.attempts] == ["broken", "garbage", "good"]
        assert "500" in (result.attempts[0].error or "")
        assert result.attempts[-1].error is None
        assert result.model == "good"
        assert result.accuracy == 1.0
        assert router.feedback_counts() == {"broken": 1, "garbage": 1, "good": 1}
        # The failures were zero-reward observations: they lowered nothing under
        # reward-inaction, but the successful fallback raised "good".
        assert router.probabilities()["good"] > 1.0 / 1011.0
        assert router.pending == 0


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_keeps_a_rate_limited_model_out(pool: Pool, status: int) -> None:
    # A 503's Retry-After says how long the server will be unavailable (RFC 9110), a 429's
    # how long to wait: either holds the model out, as in the gateway.
    behaviours = {"limited": fail(status, ("Retry-After", "30")), "good": answer("B")}
    with model_farm(behaviours) as farm:
        router = Router(
            pool(farm.url, "limited", "good"),
            policy=LearningAutomaton(),
            prior={"limited": 1000.0, "good": 1.0},
            scorer=MultipleChoice(),
            seed=0,
        )
        first = router.route("q\nA) x\nB) y", reference="B")
        assert [a.model for a in first.attempts] == ["limited", "good"]
        for _ in range(5):
            assert router.route("q\nA) x\nB) y", reference="B").model == "good"
        assert farm.calls["limited"] == 1, "called again before its Retry-After passed"


def test_when_every_model_fails_one_error_lists_every_attempt(pool: Pool) -> None:
    with model_farm({"x": fail(503), "y": fail(400), "z": fail(500)}) as farm:
        router = Router(pool(farm.url, "x", "y", "z"), scorer=MultipleChoice(), max_attempts=2)
        with pytest.raises(AllModelsFailedError) as caught:
            router.route("hello", reference="A")
        error = caught.value
        assert len(error.attempts) == 2
        for attempt in error.attempts:
            assert attempt.model in str(error)
        assert sum(router.feedback_counts().values()) == 2
        assert "sk-test" not in str(error)


def test_without_a_scorer_the_decision_waits_for_human_feedback(pool: Pool) -> None:
    with model_farm({"a": answer("Paris")}) as farm:
        router = Router(pool(farm.url, "a"), seed=0)
        result = router.route([{"role": "user", "content": "Capital of France?"}])
        assert (result.accuracy, result.reward, result.text) == (None, None, "Paris")
        assert router.pending == 1
        reward = router.feedback(
            result.decision, accuracy=1.0, cost=result.cost, latency=result.latency
        )
        assert 0 <= reward <= 1
        assert router.pending == 0


def test_aroute_many_concurrent_queries(pool: Pool) -> None:
    behaviours = {"fast": answer("B"), "slow": Behaviour(text="A", delay=0.05)}
    with model_farm(behaviours) as farm:
        router = Router(pool(farm.url, "fast", "slow"), scorer=MultipleChoice(), seed=2)

        async def main() -> list[str]:
            results = await asyncio.gather(
                *(
                    router.aroute("q\nA) x\nB) y", context=f"c{i % 3}", reference="B")
                    for i in range(60)
                )
            )
            await router.aclose()
            return [r.model for r in results]

        models = asyncio.run(main())
        assert len(models) == 60
        applied = sum(sum(router.feedback_counts(f"c{i}").values()) for i in range(3))
        assert applied == 60
        assert farm.calls["fast"] + farm.calls["slow"] == 60
        assert router.pending == 0


def test_route_needs_backends_and_snapshots_keep_no_backend(pool: Pool) -> None:
    with pytest.raises(ConfigError, match="backends"):
        Router(["a", "b"]).route("hi")
    with pytest.raises(ConfigError, match="scorer"):
        Router(["a"], scorer=MultipleChoice())
    with model_farm({"a": answer("B"), "b": answer("B")}) as farm:
        models = pool(farm.url, "a", "b")
        router = Router(models, scorer=MultipleChoice(), seed=0)
        router.route("q\nA) x\nB) y", reference="B")
        blob = router.snapshot()
        assert b"sk-test" not in blob
        assert b"127.0.0.1" not in blob
        restored = Router.restore(blob, models=models, scorer=MultipleChoice())
        assert restored.route("q\nA) x\nB) y", reference="B").accuracy == 1.0
        with pytest.raises(ConfigError):
            Router.restore(blob).route("q")
