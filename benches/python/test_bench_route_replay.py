"""What `Router.route` adds around a backend call, and the replay engine's throughput.

Route overhead is measured two ways, each against the same work done without pickllm:
* with an in-process backend that answers at once (so nothing but pickllm's loop is timed):
  `route` against calling the backend and the scorer directly;
* against a real OpenAI-compatible server on 127.0.0.1 (tests/model_farm.py): `route` against
  the same backend call and scoring without a router. The difference of the medians is the
  overhead; the HTTP round trip dominates both and makes this one noisier.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))

from model_farm import answer, model_farm
from pickllm import LearningAutomaton, Model, OpenAICompatible, Reward, Router
from pickllm.backends import Completion, Usage
from pickllm.replay.engine import Strategy, run_sessions, tables
from pickllm.replay.scenario import Scenario
from pickllm.scorers import MultipleChoice

QUESTION = "2 + 2?\nA) 3\nB) 4"
MESSAGES = [{"role": "user", "content": QUESTION}]
ROUNDS = 400


class Instant:
    """A backend that answers at once: only pickllm's own work is left to time."""

    def complete(self, messages: Any, *, model: str, **kwargs: Any) -> Completion:
        return Completion("The answer is B.", model, Usage(12, 5), latency=0.2)

    async def acomplete(self, messages: Any, **kwargs: Any) -> Completion:
        return self.complete(messages, **kwargs)

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


def label(benchmark: Any, op: str, system: str, models: int) -> None:
    benchmark.group = op
    benchmark.extra_info.update(op=op, system=system, models=models)


@pytest.fixture(scope="module")
def farm_url() -> Iterator[str]:
    with model_farm({"a": answer("B"), "b": answer("B")}) as farm:
        yield farm.url


def test_route_in_process(benchmark: Any) -> None:
    models = [Model(n, backend=Instant(), input_price=1.0, output_price=2.0) for n in "ab"]
    router = Router(models, scorer=MultipleChoice(), seed=1)
    label(benchmark, "route, instant backend", "pickllm route", 2)
    result = benchmark(lambda: router.route(QUESTION, reference="B"))
    assert result.accuracy == 1.0


def test_direct_in_process(benchmark: Any) -> None:
    backend, scorer = Instant(), MultipleChoice()

    def call() -> float:
        completion = backend.complete(MESSAGES, model="a")
        return scorer.score(QUESTION, completion.text, "B")

    label(benchmark, "route, instant backend", "backend call + scorer", 2)
    assert benchmark(call) == 1.0


def test_route_local_server(benchmark: Any, farm_url: str) -> None:
    backend = OpenAICompatible(base_url=farm_url, api_key_env=None)
    router = Router([Model(n, backend=backend) for n in "ab"], scorer=MultipleChoice(), seed=1)
    label(benchmark, "route, local HTTP server", "pickllm route", 2)
    # The same number of rounds on both sides of the comparison (calibration would differ).
    result = benchmark.pedantic(lambda: router.route(QUESTION, reference="B"), rounds=ROUNDS)
    assert result.accuracy == 1.0
    backend.close()


def test_direct_local_server(benchmark: Any, farm_url: str) -> None:
    backend, scorer = OpenAICompatible(base_url=farm_url, api_key_env=None), MultipleChoice()

    def call() -> float:
        completion = backend.complete(MESSAGES, model="a")
        return scorer.score(QUESTION, completion.text, "B")

    label(benchmark, "route, local HTTP server", "backend call + scorer", 2)
    assert benchmark.pedantic(call, rounds=ROUNDS) == 1.0
    backend.close()


def test_raw_httpx_local_server(benchmark: Any, farm_url: str) -> None:
    """The baseline of the backend's own overhead: the same POST with a bare httpx.Client."""
    body = {"model": "a", "messages": MESSAGES}
    with httpx.Client() as client:

        def call() -> Any:
            return client.post(farm_url + "/chat/completions", json=body).json()

        label(benchmark, "backend call, local HTTP server", "raw httpx", 1)
        assert benchmark.pedantic(call, rounds=ROUNDS)["choices"]


@pytest.mark.parametrize("limits", ["no limits", "deadline + size cap"])
def test_backend_local_server(benchmark: Any, farm_url: str, limits: str) -> None:
    """OpenAICompatible.complete: validation, timing, classification; with a deadline also the
    watchdog and connection tracing, with a cap the counting of bytes."""
    backend = OpenAICompatible(base_url=farm_url, api_key_env=None)
    bounded = limits != "no limits"

    def call() -> Completion:
        if not bounded:
            return backend.complete(MESSAGES, model="a")
        deadline = time.monotonic() + 30.0
        return backend.complete(MESSAGES, model="a", deadline=deadline, max_response_bytes=2**23)

    label(benchmark, "backend call, local HTTP server", f"OpenAICompatible, {limits}", 1)
    assert benchmark.pedantic(call, rounds=ROUNDS).text == "B"
    backend.close()


def test_replay_throughput(benchmark: Any) -> None:
    """20 sessions of 1,000 queries: 20,000 decisions per round, run in the core."""
    (table, *_) = tables(Scenario.default().outcomes(rows=1000, seed=0))
    strategy = Strategy.learner(LearningAutomaton(0.01))  # never locks in 1,000 queries
    label(benchmark, "replay, 20,000 decisions", "pickllm automaton", 4)
    sessions = benchmark(lambda: run_sessions([table], Reward(), strategy, 1000, range(20)))
    assert len(sessions) == 20
