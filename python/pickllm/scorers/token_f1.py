"""Token-level F1 between response and reference, as in the SQuAD evaluation."""

from __future__ import annotations

from collections import Counter

from pickllm.scorers.base import require_reference
from pickllm.scorers.normalize import normalized_tokens

__all__ = ["TokenF1"]


class TokenF1:
    """The harmonic mean of token precision and recall after SQuAD normalization.

    Tokens are the whitespace-separated words of the normalized texts (see
    :func:`~pickllm.scorers.normalize_answer`), counted with multiplicity. As in SQuAD, when
    either side has no tokens the score is 1.0 if both are empty and 0.0 otherwise.

    >>> f1 = TokenF1()
    >>> f1.score("Who?", "Marie Curie", "Marie Curie")
    1.0
    >>> f1.score("Who?", "Curie", "Marie Curie")  # precision 1, recall 1/2
    0.6666666666666666
    >>> f1.score("Who?", "Einstein", "Marie Curie")
    0.0
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "TokenF1()"

    def score(self, prompt: str, response: str, reference: str | None = None) -> float:
        """F1 of ``response`` against ``reference``; raises if ``reference`` is None."""
        expected = require_reference(reference, scorer="TokenF1")
        predicted_tokens = normalized_tokens(response)
        expected_tokens = normalized_tokens(expected)
        if not predicted_tokens or not expected_tokens:
            return float(predicted_tokens == expected_tokens)
        common = Counter(predicted_tokens) & Counter(expected_tokens)
        overlap = sum(common.values())
        if overlap == 0:
            return 0.0
        precision = overlap / len(predicted_tokens)
        recall = overlap / len(expected_tokens)
        return 2 * precision * recall / (precision + recall)
