"""SQuAD-style answer normalization, shared by :class:`ExactMatch` and :class:`TokenF1`.

The steps are those of the official SQuAD v1.1 evaluation script, in its order: lower-case,
drop punctuation, drop the English articles "a", "an", "the", collapse whitespace. One extension:
punctuation means ASCII punctuation (as in SQuAD) *and* every Unicode punctuation character, so
the curly quotes and dashes that chat models like to print do not break a match.
"""

from __future__ import annotations

import re
import string
import unicodedata
from functools import lru_cache

__all__ = ["normalize_answer", "normalized_tokens"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


@lru_cache(maxsize=4096)
def _is_punctuation(char: str) -> bool:
    return char in _ASCII_PUNCTUATION or unicodedata.category(char).startswith("P")


def normalize_answer(text: str) -> str:
    """Normalize an answer for comparison.

    >>> normalize_answer("  The Eiffel  Tower!  ")
    'eiffel tower'
    >>> normalize_answer("“An apple”, she said.")
    'apple she said'
    """
    lowered = text.lower()
    without_punctuation = "".join(c for c in lowered if not _is_punctuation(c))
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def normalized_tokens(text: str) -> list[str]:
    """The whitespace tokens of :func:`normalize_answer` applied to ``text``.

    >>> normalized_tokens("The cat, the hat.")
    ['cat', 'hat']
    """
    return normalize_answer(text).split()
