"""Exact match after SQuAD normalization."""

from __future__ import annotations

from pickllm.scorers.base import require_reference
from pickllm.scorers.normalize import normalize_answer

__all__ = ["ExactMatch"]


class ExactMatch:
    """1.0 when the response equals the reference after normalization, else 0.0.

    Normalization (see :func:`~pickllm.scorers.normalize_answer`) ignores case, punctuation,
    the articles "a", "an", "the" and runs of whitespace. With ``normalize=False`` the strings
    are compared exactly, only stripped of surrounding whitespace.

    >>> scorer = ExactMatch()
    >>> scorer.score("Largest planet?", "The planet Jupiter.", "planet jupiter")
    1.0
    >>> scorer.score("Largest planet?", "Saturn", "Jupiter")
    0.0
    >>> ExactMatch(normalize=False).score("Largest planet?", "jupiter", "Jupiter")
    0.0
    """

    __slots__ = ("normalize",)

    def __init__(self, *, normalize: bool = True) -> None:
        self.normalize = normalize

    def __repr__(self) -> str:
        return f"ExactMatch(normalize={self.normalize})"

    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        """Compare ``response`` with ``reference``; raises if ``reference`` is None."""
        expected = require_reference(reference, scorer="ExactMatch")
        if self.normalize:
            return float(normalize_answer(response) == normalize_answer(expected))
        return float(response.strip() == expected.strip())
