"""The errors scorers raise.

All derive from :class:`ScorerError`, itself a :class:`pickllm.errors.PickLLMError`. A scorer never
turns a failure into a silent score of 0: a wrong score would teach the router something false, so
a failure is an exception the caller can see (the router feeds a failed call back as it chooses).
"""

from __future__ import annotations

from pickllm.errors import PickLLMError

__all__ = [
    "EmbeddingError",
    "InvalidScoreError",
    "MissingReferenceError",
    "ScorerError",
    "ScorerTimeoutError",
    "VerdictParseError",
]


class ScorerError(PickLLMError):
    """Base class of every error a scorer raises."""


class InvalidScoreError(ScorerError, ValueError):
    """A scorer returned something that is not a finite number in [0, 1] (NaN, 1.5, "yes", None)."""


class MissingReferenceError(ScorerError, ValueError):
    """A reference-based scorer was called without a reference, or with one it cannot read."""


class ScorerTimeoutError(ScorerError):
    """A scorer gave no grade by its deadline (cancelled at it, or it returned too late)."""


class EmbeddingError(ScorerError):
    """An embeddings endpoint failed: connection error, HTTP error status or malformed body."""


class VerdictParseError(ScorerError, ValueError):
    """An LLM judge answered with a verdict from which no score can be read.

    The judge's raw text is kept in :attr:`verdict` so a caller can log it or parse it itself.
    """

    def __init__(self, message: str, verdict: str) -> None:
        super().__init__(message)
        self.verdict = verdict
