"""The network scorers against real local servers: embeddings and an LLM judge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pickllm.backends import Completion, OpenAICompatible
from pickllm.scorers import EmbeddingSimilarity, LLMJudge, VerdictParseError, parse_verdict
from recording import Call, RecordingBackend
from servers import LlamaServer

SIMILAR = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("Water boils at 100 degrees Celsius at sea level.", "At sea level, water boils at 100 C."),
]
UNRELATED = [
    ("The cat sat on the mat.", "Quarterly revenue grew by 12 percent in Europe."),
    ("Paris is the capital of France.", "The mitochondria is the powerhouse of the cell."),
    ("Water boils at 100 degrees Celsius at sea level.", "def add(a, b): return a + b"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedding_scorer(embedding_server: LlamaServer) -> Iterator[EmbeddingSimilarity]:
    with EmbeddingSimilarity(embedding_server.base_url, model=embedding_server.model) as scorer:
        yield scorer


def test_similar_texts_score_higher_than_unrelated_ones(
    embedding_scorer: EmbeddingSimilarity,
) -> None:
    similar = [embedding_scorer.score("q", a, b) for a, b in SIMILAR]
    unrelated = [embedding_scorer.score("q", a, b) for a, b in UNRELATED]
    assert all(0.0 <= s <= 1.0 for s in similar + unrelated)
    # Every paraphrase beats every unrelated pair, not just on average.
    assert min(similar) > max(unrelated), (similar, unrelated)
    assert embedding_scorer.score("q", "The cat sat.", "The cat sat.") == pytest.approx(1.0)


@pytest.mark.anyio
async def test_ascore_gives_the_same_scores_as_score(embedding_server: LlamaServer) -> None:
    async with EmbeddingSimilarity(
        embedding_server.base_url, model=embedding_server.model
    ) as scorer:
        for a, b in SIMILAR[:1] + UNRELATED[:1]:
            assert await scorer.ascore("q", a, b) == pytest.approx(scorer.score("q", a, b))


class Recorder(RecordingBackend):
    """Wraps a real backend and keeps every call and completion, so the test can check what
    the judge sent and see the raw verdict it got back."""

    def __init__(self, backend: OpenAICompatible) -> None:
        super().__init__()
        self.backend = backend
        self.completions: list[Completion] = []

    def answer(self, call: Call) -> Completion:
        completion = self.backend.complete(call.messages, **call.options())
        self.completions.append(completion)
        return completion

    async def aanswer(self, call: Call) -> Completion:
        completion = await self.backend.acomplete(call.messages, **call.options())
        self.completions.append(completion)
        return completion


def judge_outcome(judge: LLMJudge, *args: str) -> float | str:
    """The judge's score, or the raw verdict it could not parse."""
    try:
        return judge.score(*args)
    except VerdictParseError as error:
        return error.verdict


def assert_outcome_matches_verdict(outcome: float | str, verdict: str) -> None:
    """The judge's two documented answers to a verdict: the parsed score in [0, 1], or
    VerdictParseError carrying the verdict verbatim (never a silent 0)."""
    if isinstance(outcome, float):
        assert 0.0 <= outcome <= 1.0
        assert outcome == parse_verdict(verdict)
    else:
        assert outcome == verdict
        with pytest.raises(VerdictParseError):
            parse_verdict(verdict)


def test_llm_judge_on_a_real_model(smollm2_server: LlamaServer) -> None:
    # A 135M model is no reliable judge, and llama.cpp does not promise that a temperature-0
    # request repeats (a cold and a warm prompt cache can answer differently). What the judge
    # guarantees, and what is asserted, holds for any verdict: it sends one well-formed,
    # temperature-0, bounded request per grade, and the verdict it really got is either parsed
    # into [0, 1] or rejected with the documented error carrying that text. Both prompt forms
    # (with and without a reference answer) go to the real server.
    backend = OpenAICompatible(base_url=smollm2_server.base_url, api_key_env=None)
    recorder = Recorder(backend)
    judge = LLMJudge(recorder, smollm2_server.model, max_tokens=16)
    question = "What is the capital of France?"
    cases = [(question, "Paris", "Paris"), (question, "Paris")]
    try:
        outcomes = [judge_outcome(judge, *case) for case in cases]
    finally:
        backend.close()

    assert len(recorder.calls) == len(recorder.completions) == len(cases)
    for case, request, completion, outcome in zip(
        cases, recorder.calls, recorder.completions, outcomes, strict=True
    ):
        assert request == Call(judge.messages(*case), smollm2_server.model, 16, 0.0, False)
        user = request.messages[1]["content"]
        assert ("Reference answer:\nParis" in user) == (len(case) == 3)
        assert completion.model == smollm2_server.model
        usage = completion.usage
        assert not usage.estimated
        assert usage.input_tokens > 20  # rubric + question + answers went to the real server
        assert 0 <= usage.output_tokens <= 16  # the judge's max_tokens bound the verdict
        assert_outcome_matches_verdict(outcome, completion.text)


@pytest.mark.anyio
async def test_llm_judge_async_path_on_a_real_model(smollm2_server: LlamaServer) -> None:
    backend = OpenAICompatible(base_url=smollm2_server.base_url, api_key_env=None)
    recorder = Recorder(backend)
    judge = LLMJudge(recorder, smollm2_server.model, max_tokens=16)
    try:
        try:
            outcome: float | str = await judge.ascore("What is 2 + 2?", "4", "4")
        except VerdictParseError as error:
            outcome = error.verdict
    finally:
        await backend.aclose()
    (request,) = recorder.calls
    assert request == Call(
        judge.messages("What is 2 + 2?", "4", "4"), smollm2_server.model, 16, 0.0, False
    )
    (completion,) = recorder.completions
    assert_outcome_matches_verdict(outcome, completion.text)


def test_docs_examples_run_against_the_real_servers(
    embedding_server: LlamaServer, smollm2_server: LlamaServer
) -> None:
    text = (REPO_ROOT / "docs" / "scorers.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.DOTALL) if "127.0.0.1" in b]
    assert len(blocks) == 2
    for block in blocks:
        # The docs name the ports of scripts/serve-local.sh; the fixtures' servers use free ones.
        block = block.replace("http://127.0.0.1:8082/v1", embedding_server.base_url)
        block = block.replace("http://127.0.0.1:8080/v1", smollm2_server.base_url)
        exec(compile(block, "docs/scorers.md", "exec"), {})
