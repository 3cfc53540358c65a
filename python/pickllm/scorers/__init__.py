"""Scorers: grade a model's answer with an accuracy in [0, 1].

A scorer is anything with ``score(prompt, response, reference=None) -> float`` (or the async
``ascore``), or a plain sync or async function of those three arguments; :func:`as_scorer` adapts
any of them. Built in:

* reference-based: :class:`ExactMatch`, :class:`MultipleChoice`, :class:`TokenF1`;
* :class:`EmbeddingSimilarity`: cosine to the reference through any OpenAI-compatible
  ``/embeddings`` endpoint;
* :class:`LLMJudge`: asks a model through any backend, with a rubric.

>>> from pickllm.scorers import MultipleChoice, TokenF1
>>> MultipleChoice().score("2 + 2 = ?\\nA) 3\\nB) 4", "The answer is B.", "B")
1.0
>>> round(TokenF1().score("Who?", "Ada Lovelace", "Lady Ada Lovelace"), 2)
0.8
"""

from __future__ import annotations

from pickllm.scorers.base import (
    AsyncScoreFunction,
    AsyncScorer,
    ScoreFunction,
    Scorer,
    ScorerAdapter,
    ScorerLike,
    as_scorer,
    require_reference,
    validate_score,
)
from pickllm.scorers.embedding import EmbeddingSimilarity, cosine_similarity
from pickllm.scorers.errors import (
    EmbeddingError,
    InvalidScoreError,
    MissingReferenceError,
    ScorerError,
    ScorerTimeoutError,
    VerdictParseError,
)
from pickllm.scorers.exact_match import ExactMatch
from pickllm.scorers.judge import DEFAULT_RUBRIC, JudgeBackend, LLMJudge, parse_verdict
from pickllm.scorers.multiple_choice import MultipleChoice, extract_choice
from pickllm.scorers.normalize import normalize_answer, normalized_tokens
from pickllm.scorers.token_f1 import TokenF1

__all__ = [
    "DEFAULT_RUBRIC",
    "AsyncScoreFunction",
    "AsyncScorer",
    "EmbeddingError",
    "EmbeddingSimilarity",
    "ExactMatch",
    "InvalidScoreError",
    "JudgeBackend",
    "LLMJudge",
    "MissingReferenceError",
    "MultipleChoice",
    "ScoreFunction",
    "Scorer",
    "ScorerAdapter",
    "ScorerError",
    "ScorerLike",
    "ScorerTimeoutError",
    "TokenF1",
    "VerdictParseError",
    "as_scorer",
    "cosine_similarity",
    "extract_choice",
    "normalize_answer",
    "normalized_tokens",
    "parse_verdict",
    "require_reference",
    "validate_score",
]
