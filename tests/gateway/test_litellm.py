"""A real litellm.Router: as a client of `pickllm serve`, and with pickllm as its routing strategy
(pickllm.integrations.litellm), both against the local upstream."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import litellm
import pytest

from gateway_servers import KEY, Process, Serve, base_config
from pickllm import DecisionError, QLearning, Reward, Router, UnknownModelError, default_policy
from pickllm.integrations.litellm import PickLLMStrategy, install

pytestmark = [
    pytest.mark.anyio,
    # LiteLLM's own types make pydantic warn; not pickllm's to fix.
    pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning"),
]


@pytest.fixture(autouse=True)
async def close_litellm_clients(anyio_backend: str) -> AsyncIterator[None]:
    """LiteLLM keeps the HTTP clients it makes, with their keep-alive connections, in a
    process-wide cache beyond the event loop of one test; close and forget them while this
    test's loop still runs. Left open, their sockets are found by the garbage collector in some
    later test (an unraisable ResourceWarning)."""
    yield
    await litellm.close_litellm_async_clients()
    litellm.in_memory_llm_clients_cache.flush_cache()


def deployment(name: str, model: str, api_base: str, group: str = "auto") -> dict[str, object]:
    return {
        "model_name": group,
        "litellm_params": {"model": f"openai/{model}", "api_base": api_base, "api_key": "none"},
        "model_info": {"id": name},
    }


@pytest.fixture
def gateway(serve: Serve, upstream: str) -> Process:
    return serve(base_config(upstream))


async def test_litellm_router_as_a_gateway_client(gateway: Process) -> None:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "pickllm-auto",
                "litellm_params": {
                    "model": "openai/auto",
                    "api_base": f"{gateway.url}/v1",
                    "api_key": KEY,
                },
            }
        ],
        num_retries=0,
    )
    response = await router.acompletion(
        model="pickllm-auto", messages=[{"role": "user", "content": "hello"}]
    )
    text = response.choices[0].message.content
    assert text in ("good-model: hello", "bad: hello")
    chunks = []
    stream = await router.acompletion(
        model="pickllm-auto", messages=[{"role": "user", "content": "a b"}], stream=True
    )
    async for chunk in stream:
        chunks.append(chunk.choices[0].delta.content or "")
    assert "".join(chunks) in ("good-model: a b ", "bad: a b ")


async def settled(router: Router) -> None:
    """Wait until LiteLLM has delivered every success or failure event: it logs them in
    background tasks, after the call has returned."""
    deadline = time.monotonic() + 30.0
    while router.pending:
        if time.monotonic() > deadline:
            pytest.fail(f"{router.pending} decisions were never settled")
        await anyio.sleep(0.01)


def pool(upstream: str) -> list[dict[str, object]]:
    return [
        deployment("good", "good-model", upstream),
        deployment("bad", "bad", upstream),
        deployment("down", "fail-500", upstream, group="flaky"),
        deployment("up", "good-model", upstream, group="flaky"),
    ]


def learner(models: list[str]) -> Router:
    policy = QLearning("sample_average", epsilon=0.1, epsilon_decay=1.0, epsilon_min=0.1)
    return Router(models, policy=policy, reward=Reward(cost=0.0, latency=0.0), seed=11)


async def test_strategy_learns_from_feedback_by_id(upstream: str) -> None:
    """Accuracy 1 for good, 0 for bad, given later by feedback id: afterwards the greedy choice
    is good with probability 0.95, so at least 20 of the last 30 picks are good except with
    probability below 1e-9; the seed makes the run repeatable."""
    router = litellm.Router(model_list=pool(upstream), num_retries=0)
    pickllm_router = learner(["good", "bad"])
    strategy, _ = install(router, {"auto": pickllm_router}, default_accuracy=0.5)
    picked = []
    for n in range(40):
        response = await router.acompletion(
            model="auto",
            messages=[{"role": "user", "content": "q"}],
            metadata={"pickllm_feedback_id": f"req-{n}", "pickllm_context": "support"},
        )
        model = "good" if response.choices[0].message.content.startswith("good") else "bad"
        picked.append(model)
        strategy.feedback(f"req-{n}", 1.0 if model == "good" else 0.0)
    assert picked[10:].count("good") >= 20
    await settled(pickllm_router)
    assert sum(pickllm_router.feedback_counts("support").values()) == 40
    assert pickllm_router.pending == 0
    with pytest.raises(DecisionError):
        strategy.feedback("req-0", 1.0)  # settled already: nothing counted twice
    with pytest.raises(DecisionError):
        strategy.feedback("never-issued", 1.0)


async def test_failures_are_fed_back_as_zero_accuracy(upstream: str) -> None:
    router = litellm.Router(model_list=pool(upstream), num_retries=0)
    pickllm_router = learner(["down", "up"])
    install(router, {"flaky": pickllm_router}, default_accuracy=1.0)
    failures = 0
    for _ in range(10):
        try:
            await router.acompletion(model="flaky", messages=[{"role": "user", "content": "q"}])
        except litellm.InternalServerError:
            failures += 1
    await settled(pickllm_router)
    counts = pickllm_router.feedback_counts()
    # every call was settled once: failures (accuracy 0) to "down", answers to "up"
    assert counts["down"] == failures
    assert counts["up"] == 10 - failures
    assert pickllm_router.pending == 0
    # the learner moved away from the failing deployment
    assert pickllm_router.probabilities()["up"] > 0.5


def test_deployment_ids_are_checked(upstream: str) -> None:
    router = litellm.Router(model_list=pool(upstream))
    with pytest.raises(UnknownModelError, match="not deployment ids"):
        PickLLMStrategy(router, {"auto": Router(["good", "nope"])})


async def test_the_docs_example_runs(upstream: str) -> None:
    """docs/gateway.md's LiteLLM example, as written but for its server addresses (both swapped
    for the local upstream): its `ask` answers from one of the two deployments, and feedback
    by the request's id settles that decision once."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"
    (code,) = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)
    code = code.replace("http://127.0.0.1:8080/v1", upstream)
    code = code.replace("http://127.0.0.1:8081/v1", upstream)
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/gateway.md", "exec"), namespace)
    answer = await namespace["ask"]("hello there", "req-1")
    assert answer in ("smollm2: hello there", "gemma: hello there")
    strategy: PickLLMStrategy = namespace["strategy"]
    strategy.feedback("req-1", accuracy=1.0)
    (pickllm_router,) = strategy.routers.values()
    assert pickllm_router.policy == default_policy()  # the plug-in's learner is the default too
    await settled(pickllm_router)
    assert sum(pickllm_router.feedback_counts("support").values()) == 1
    with pytest.raises(DecisionError):
        strategy.feedback("req-1", accuracy=1.0)
