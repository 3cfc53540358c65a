"""An LLM as the scorer: ask a model, through any backend, to grade the answer by a rubric."""

from __future__ import annotations

import re

from pickllm.backends import Completer, Message
from pickllm.errors import ConfigError
from pickllm.scorers.errors import VerdictParseError

__all__ = ["DEFAULT_RUBRIC", "JudgeBackend", "LLMJudge", "parse_verdict"]

DEFAULT_RUBRIC = (
    "Grade how correct and complete the response is as an answer to the question. "
    "When a reference answer is given, a response that agrees with it is correct, whatever "
    "its wording; a response that contradicts it is wrong."
)

_NUMBER = r"(?<![\w.])-?\d+(?:\.\d+)?"
_LABELLED = re.compile(
    rf"(?i:\b(?:score|rating|grade|mark)\b)\s*(?i:is|of|=|:)?\s*:?\s*\**\s*(?P<num>{_NUMBER})"
    rf"(?:\s*(?:/|(?i:out\s+of))\s*(?P<den>{_NUMBER}))?(?P<pct>\s*%)?"
)
_FRACTION = re.compile(rf"(?P<num>{_NUMBER})\s*(?:/|(?i:out\s+of))\s*(?P<den>{_NUMBER})")
_PERCENT = re.compile(rf"(?P<num>{_NUMBER})\s*%")
_ANY_NUMBER = re.compile(_NUMBER)
_FIRST_WORD = re.compile(r"^[\s*_\"'`#>\[(]*(?P<word>[A-Za-z]+)")
_YES = frozenset({"yes", "correct", "pass", "true", "right"})
_NO = frozenset({"no", "incorrect", "wrong", "fail", "false"})


#: What the judge needs of a backend: the two calls of :class:`pickllm.backends.Backend`.
JudgeBackend = Completer


def _fail(verdict: str, why: str) -> VerdictParseError:
    return VerdictParseError(
        f"cannot read a score from the judge's verdict {verdict[:200]!r}: {why}", verdict
    )


def _ratio(verdict: str, numerator: str, denominator: str) -> float:
    num, den = float(numerator), float(denominator)
    if den <= 0 or not 0 <= num <= den:
        raise _fail(verdict, f"{numerator}/{denominator} is not a fraction in [0, 1]")
    return num / den


def _on_scale(verdict: str, number: str, scale: int) -> float:
    value = float(number)
    if "." in number and 0.0 <= value <= 1.0:
        return value  # "0.7" is already a fraction
    if not 0.0 <= value <= scale:
        raise _fail(verdict, f"{number} is outside the scale 0-{scale}")
    return value / scale


def parse_verdict(verdict: str, *, scale: int = 10) -> float:
    """Read a score in [0, 1] from a judge's free-text verdict, or raise VerdictParseError.

    Tried in order, the first kind found decides:

    1. a labelled score, the last one if several: "SCORE: 7/10", "Rating: 4 out of 5",
       "score: 85%", "Score: 0.7", "Grade: 8" (a bare number as in 4. and 5.);
    2. a fraction anywhere, the last one: "7/10", "4 out of 5";
    3. a percentage, the last one: "85%";
    4. a verdict that opens with yes / correct / pass / true / right (1.0) or no / incorrect /
       wrong / fail / false (0.0);
    5. exactly one number in the whole verdict.

    A number without a denominator is on the judge's scale ("7" is 7/``scale``), except that a
    number written with a decimal point between 0 and 1 is a fraction already ("0.7", "1.0").
    Several different bare numbers, a value outside its range (11/10, -1, 120%) or no cue at
    all raise :class:`~pickllm.scorers.VerdictParseError`, which keeps the raw verdict: an
    unreadable verdict is never turned into a silent 0.

    >>> parse_verdict("SCORE: 7/10")
    0.7
    >>> parse_verdict("The response is mostly right. Rating: 4 out of 5")
    0.8
    >>> parse_verdict("Score: 0.25")
    0.25
    >>> parse_verdict("8")
    0.8
    >>> parse_verdict("Yes, it matches the reference.")
    1.0
    >>> try:
    ...     parse_verdict("I cannot judge this.")
    ... except VerdictParseError as exc:
    ...     print(exc.verdict)
    I cannot judge this.
    """
    labelled = list(_LABELLED.finditer(verdict))
    if labelled:
        last = labelled[-1]
        if last.group("den") is not None:
            return _ratio(verdict, last.group("num"), last.group("den"))
        if last.group("pct"):
            return _ratio(verdict, last.group("num"), "100")
        return _on_scale(verdict, last.group("num"), scale)
    fractions = list(_FRACTION.finditer(verdict))
    if fractions:
        return _ratio(verdict, fractions[-1].group("num"), fractions[-1].group("den"))
    percents = list(_PERCENT.finditer(verdict))
    if percents:
        return _ratio(verdict, percents[-1].group("num"), "100")
    first = _FIRST_WORD.match(verdict)
    if first is not None:
        word = first.group("word").lower()
        if word in _YES:
            return 1.0
        if word in _NO:
            return 0.0
    numbers = {float(n): n for n in _ANY_NUMBER.findall(verdict)}
    if len(numbers) == 1:
        return _on_scale(verdict, next(iter(numbers.values())), scale)
    if len(numbers) > 1:
        raise _fail(verdict, f"several numbers ({', '.join(numbers.values())}) and no label")
    raise _fail(verdict, "no score, fraction, percentage, yes/no or number found")


class LLMJudge:
    """Ask a model, through any backend, to grade a response by a rubric; parse its verdict.

    The judge gets a system message with the rubric and the reply format ("SCORE: N/scale"), and
    a user message with the question, the reference answer when there is one, and the response.
    Its verdict is read by :func:`parse_verdict`, which accepts many more shapes than asked for,
    and raises :class:`~pickllm.scorers.VerdictParseError` when none fits. ``temperature``
    defaults to 0 so that the same answer gets the same grade; ``max_tokens`` bounds the verdict
    (a short one is all that is parsed). Backend failures propagate as the backend's errors.

    >>> from pickllm.backends import Completion, Usage
    >>> class StubBackend:  # stands in for OpenAICompatible(base_url=...)
    ...     def complete(self, messages, *, model, max_tokens=None, temperature=None,
    ...                  stream=False):
    ...         return Completion(text="SCORE: 9/10", model=model, usage=Usage(50, 5), latency=0.1)
    ...     async def acomplete(self, messages, **kwargs):
    ...         return self.complete(messages, **kwargs)
    >>> judge = LLMJudge(StubBackend(), "judge-model")
    >>> judge.score("What is 2 + 2?", "4", reference="4")
    0.9
    """

    __slots__ = ("backend", "max_tokens", "model", "rubric", "scale", "temperature")

    def __init__(
        self,
        backend: JudgeBackend,
        model: str,
        rubric: str = DEFAULT_RUBRIC,
        *,
        scale: int = 10,
        max_tokens: int = 32,
        temperature: float = 0.0,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ConfigError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(rubric, str) or not rubric.strip():
            raise ConfigError("rubric must be a non-empty string")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ConfigError(f"scale must be a positive integer, got {scale!r}")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ConfigError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.backend = backend
        self.model = model
        self.rubric = rubric.strip()
        self.scale = scale
        self.max_tokens = max_tokens
        self.temperature = temperature

    def __repr__(self) -> str:
        return f"LLMJudge(model={self.model!r}, scale={self.scale})"

    def messages(self, prompt: str, response: str, reference: str | None = None) -> list[Message]:
        """The chat messages sent to the judge model.

        Examples:
            >>> class NoBackend:
            ...     pass
            >>> judge = LLMJudge(NoBackend(), "m")
            >>> judge.messages("2+2?", "4", "4")[1]["content"].splitlines()[0]
            'Question:'
        """
        system = (
            "You are a strict grader. "
            f"{self.rubric}\n"
            f"Reply with exactly one line of the form SCORE: N/{self.scale}, where N is an "
            f"integer from 0 (wrong) to {self.scale} (fully correct). Do not explain."
        )
        parts = [f"Question:\n{prompt}"]
        if reference is not None:
            parts.append(f"Reference answer:\n{reference}")
        parts.append(f"Response to grade:\n{response}")
        parts.append(f"Reply with SCORE: N/{self.scale}.")
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": "\n\n".join(parts)},
        ]

    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        """Ask the judge (one backend call) and parse its verdict."""
        completion = self.backend.complete(
            self.messages(prompt, response, reference),
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        return parse_verdict(completion.text, scale=self.scale)

    async def ascore(self, prompt: str, response: str, reference: str | None = None) -> float:
        """The async twin of :meth:`score`."""
        completion = await self.backend.acomplete(
            self.messages(prompt, response, reference),
            model=self.model,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        return parse_verdict(completion.text, scale=self.scale)
