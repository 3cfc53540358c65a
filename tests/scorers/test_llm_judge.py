"""LLMJudge with a recording stub backend, and the verdict parser on its own."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm.backends import Completion, Usage
from pickllm.errors import ConfigError
from pickllm.scorers import DEFAULT_RUBRIC, LLMJudge, VerdictParseError, parse_verdict
from recording import Call, RecordingBackend


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        # labelled scores
        ("SCORE: 7/10", 0.7),
        ("score: 10/10", 1.0),
        ("SCORE: 0/10", 0.0),
        ("Score = 3 / 10", 0.3),
        ("Rating: 4 out of 5", 0.8),
        ("Grade: 85%", 0.85),
        ("Score: 0.7", 0.7),
        ("Score: 1.0", 1.0),
        ("Score: 8", 0.8),
        ("Score: 1", 0.1),  # integers are on the 0-10 scale
        ("**Score:** 9/10", 0.9),
        ("The score is 6/10.", 0.6),
        ("SCORE: N/10 means... SCORE: 2/10", 0.2),  # the last labelled score
        ("Score: 3/10. On reflection, score: 5/10", 0.5),
        ("Fits the reference well (7 facts of 9). SCORE: 8/10", 0.8),  # label beats fraction
        # fractions and percentages
        ("7/10", 0.7),
        ("I'd give it 3 out of 4", 0.75),
        ("About 40% correct", 0.4),
        # yes / no
        ("Yes", 1.0),
        ("yes, it matches the reference", 1.0),
        ("Correct.", 1.0),
        ("**PASS**", 1.0),
        ("No", 0.0),
        ("No. The response names the wrong city.", 0.0),
        ("Incorrect", 0.0),
        ("FAIL", 0.0),
        # one bare number
        ("8", 0.8),
        ("  10\n", 1.0),
        ("0", 0.0),
        ("0.35", 0.35),
        ("I would say 6.", 0.6),
    ],
)
def test_parse_verdict(verdict: str, expected: float) -> None:
    assert parse_verdict(verdict) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("verdict", "why"),
    [
        ("", "no score"),
        ("The response is fine.", "no score"),
        ("I cannot judge this.", "no score"),
        ("Between 6 and 8", "several numbers"),
        ("SCORE: 11/10", "not a fraction"),
        ("SCORE: -1/10", "not a fraction"),
        ("7/0", "not a fraction"),
        ("120%", "not a fraction"),
        ("Score: 12", "outside the scale 0-10"),
        ("Score: -3", "outside the scale"),
        ("42", "outside the scale"),
    ],
)
def test_unreadable_verdicts_raise_with_the_raw_text(verdict: str, why: str) -> None:
    with pytest.raises(VerdictParseError, match=why) as caught:
        parse_verdict(verdict)
    assert caught.value.verdict == verdict
    assert isinstance(caught.value, ValueError)


def test_scale_changes_how_bare_numbers_read() -> None:
    assert parse_verdict("4", scale=5) == 0.8
    assert parse_verdict("Score: 3", scale=3) == 1.0
    assert parse_verdict("SCORE: 7/10", scale=5) == 0.7  # an explicit fraction wins
    with pytest.raises(VerdictParseError, match="0-5"):
        parse_verdict("7", scale=5)


@given(st.text(max_size=200))
def test_parse_verdict_returns_a_score_or_raises_the_documented_error(verdict: str) -> None:
    error: VerdictParseError | None = None
    try:
        value = parse_verdict(verdict)
    except VerdictParseError as caught:
        error = caught
    if error is None:
        assert 0.0 <= value <= 1.0
    else:
        assert error.verdict == verdict


# -- the judge -------------------------------------------------------------------------------


class Verdicts(RecordingBackend):
    """Answers every call with ``verdict`` and records the arguments it was called with."""

    def __init__(self, verdict: str) -> None:
        super().__init__()
        self.verdict = verdict

    def answer(self, call: Call) -> Completion:
        return Completion(text=self.verdict, model=call.model, usage=Usage(40, 5), latency=0.01)


def test_judge_sends_rubric_question_reference_and_response() -> None:
    backend = Verdicts("SCORE: 6/10")
    judge = LLMJudge(backend, "judge-1", rubric="Be harsh about units.")
    assert judge.score("How far is the Moon?", "384,400 km", reference="about 384,000 km") == 0.6
    (call,) = backend.calls
    assert call.model == "judge-1"
    assert call.temperature == 0.0
    assert call.max_tokens == 32
    assert call.stream is False
    system, user = call.messages
    assert system["role"] == "system"
    assert "Be harsh about units." in system["content"]
    assert "SCORE: N/10" in system["content"]
    assert user["role"] == "user"
    content = user["content"]
    assert content.index("How far is the Moon?") < content.index("about 384,000 km")
    assert content.index("about 384,000 km") < content.index("384,400 km")


def test_judge_without_reference_omits_that_section() -> None:
    backend = Verdicts("8/10")
    assert LLMJudge(backend, "j").score("Write a haiku.", "old pond / frog") == 0.8
    system, user = backend.calls[0].messages
    assert "Reference answer" not in user["content"]
    assert DEFAULT_RUBRIC in system["content"]


def test_judge_options_reach_the_backend() -> None:
    backend = Verdicts("4")
    judge = LLMJudge(backend, "j", scale=5, max_tokens=8, temperature=0.5)
    assert judge.score("q", "r") == 0.8
    assert backend.calls[0].max_tokens == 8
    assert backend.calls[0].temperature == 0.5
    assert "SCORE: N/5" in backend.calls[0].messages[0]["content"]


def test_unparsable_verdict_is_an_error_not_a_zero() -> None:
    judge = LLMJudge(Verdicts("As an AI, I cannot grade this."), "j")
    with pytest.raises(VerdictParseError) as caught:
        judge.score("q", "r", "ref")
    assert caught.value.verdict == "As an AI, I cannot grade this."


@pytest.mark.anyio
async def test_ascore_uses_acomplete() -> None:
    backend = Verdicts("Score: 0.9")
    judge = LLMJudge(backend, "j")
    assert await judge.ascore("q", "r", "ref") == 0.9
    assert len(backend.calls) == 1
    with pytest.raises(VerdictParseError):
        await LLMJudge(Verdicts("hmm"), "j").ascore("q", "r")


def test_backend_errors_propagate() -> None:
    class Down(Verdicts):
        def complete(self, *args: object, **kwargs: object) -> Completion:
            raise ConnectionError("judge offline")

    with pytest.raises(ConnectionError, match="judge offline"):
        LLMJudge(Down(""), "j").score("q", "r")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model": ""}, "model"),
        ({"rubric": "  "}, "rubric"),
        ({"scale": 0}, "scale"),
        ({"scale": True}, "scale"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_invalid_configuration(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"backend": Verdicts(""), "model": "j", **kwargs}
    with pytest.raises(ConfigError, match=message):
        LLMJudge(**arguments)  # type: ignore[arg-type]


def test_repr_names_model_not_backend_secrets() -> None:
    assert repr(LLMJudge(Verdicts(""), "judge-1")) == "LLMJudge(model='judge-1', scale=10)"
