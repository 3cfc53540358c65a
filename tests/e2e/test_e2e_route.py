"""Router.route end to end: real multiple-choice questions from RouterBench routed between two
real LLMs (SmolLM2-135M and Gemma 3 270M) served by llama.cpp on 127.0.0.1. Token counts,
latencies and costs are the servers' real ones; the scorer grades the real answers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pickllm import LearningAutomaton, Model, OpenAICompatible, Router
from pickllm.scorers import MultipleChoice
from servers import GEMMA3, SMOLLM2, arc_questions

PRICES = {"smollm2": (0.02, 0.05), "gemma3": (0.03, 0.08)}  # USD per million tokens (made up)


@pytest.fixture
def router(smollm2_url: str, gemma3_url: str) -> Iterator[Router]:
    small = OpenAICompatible(base_url=smollm2_url, timeout=120)
    large = OpenAICompatible(base_url=gemma3_url, timeout=120)
    models = [
        Model(
            "smollm2",
            backend=small,
            model_id=SMOLLM2,
            input_price=0.02,
            output_price=0.05,
            max_tokens=8,
        ),
        Model(
            "gemma3",
            backend=large,
            model_id=GEMMA3,
            input_price=0.03,
            output_price=0.08,
            max_tokens=8,
        ),
    ]
    with Router(
        models, policy=LearningAutomaton(0.3), scorer=MultipleChoice(), temperature=0.0, seed=11
    ) as router:
        yield router


def test_a_session_of_real_questions(router: Router, shared_data: Path) -> None:
    questions = arc_questions(shared_data, 12)
    assert len(questions) == 12
    before = router.probabilities("arc")
    for question, answer in questions:
        result = router.route(question, context="arc", reference=answer)
        assert [a.error for a in result.attempts] == [None]
        # Real usage from the server: the question alone is several tokens, answers at most 8
        # (what the model says, even whether it says anything, is up to the model).
        assert result.input_tokens > 10
        assert 0 <= result.output_tokens <= 8
        assert not result.cost_estimated
        price_in, price_out = PRICES[result.model]
        expected = (result.input_tokens * price_in + result.output_tokens * price_out) / 1e6
        assert result.cost == pytest.approx(expected)
        assert 0 < result.latency < 120
        # The scorer graded this very answer.
        assert result.accuracy == MultipleChoice().score(question, result.text, answer)
        assert result.reward is not None
    counts = router.feedback_counts("arc")
    assert sum(counts.values()) == 12
    # The default reward is at least 0.25 (a wrong answer within max_cost and max_latency still
    # earns the cost and latency terms), so every feedback moves the automaton: no luck needed.
    assert router.probabilities("arc") != before, "the learner's state did not move"
    assert router.pending == 0


def test_streaming_records_time_to_first_token(smollm2_url: str) -> None:
    backend = OpenAICompatible(base_url=smollm2_url, timeout=120)
    with Router(
        [Model("s", backend=backend, model_id=SMOLLM2, max_tokens=8)],
        stream=True,
        scorer=MultipleChoice(),
        seed=0,
    ) as router:
        result = router.route("Answer A or B.\nA) yes\nB) no", reference="A")
    assert 0 <= result.output_tokens <= 8
    # The first text delta is timed; a model may also end its turn at once (no text, no time):
    # which one it does on a given run is its business, that pickllm reports it right is ours.
    if result.text:
        assert result.time_to_first_token is not None
        assert 0 < result.time_to_first_token <= result.latency
    else:
        assert result.time_to_first_token is None


def test_aroute_concurrent_real_calls(router: Router, shared_data: Path) -> None:
    questions = arc_questions(shared_data, 6)

    async def main() -> list[float | None]:
        results = await asyncio.gather(
            *(router.aroute(q, context="async", reference=a) for q, a in questions)
        )
        await router.aclose()
        return [r.accuracy for r in results]

    accuracies = asyncio.run(main())
    assert all(a in (0.0, 1.0) for a in accuracies)
    assert sum(router.feedback_counts("async").values()) == 6


def test_readme_routing_example_runs(smollm2_url: str, gemma3_url: str) -> None:
    """The README's "Route real prompts" example, with its URLs pointed at these servers."""
    from conftest import REPO_ROOT

    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("## Route real prompts\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert len(code.strip().splitlines()) <= 14
    code = code.replace("http://127.0.0.1:8080/v1", smollm2_url)
    code = code.replace("http://127.0.0.1:8081/v1", gemma3_url)
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    router = namespace["router"]
    assert isinstance(router, Router)
    assert sum(router.feedback_counts("science").values()) == 1
    router.close()
