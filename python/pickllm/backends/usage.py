"""Token usage of one completion, as the server reported it or as estimated.

Servers report usage in different shapes (OpenAI's ``prompt_tokens`` / ``completion_tokens``,
Anthropic's ``input_tokens`` / ``output_tokens``); backends translate them into one :class:`Usage`.
Some OpenAI-compatible servers report nothing, or nothing for a stream that ended early; then the
backend estimates the counts with :func:`estimate_tokens` and sets ``estimated=True``, so a cost
computed from them can be told apart from a billed one.

>>> estimate_tokens("Hello, world!")  # 13 characters -> ceil(13 / 4)
4
>>> Usage(input_tokens=12, output_tokens=3).total_tokens
15
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # base.py imports this module at run time
    from pickllm.backends.base import Message

__all__ = ["CHARS_PER_TOKEN", "TOKENS_PER_MESSAGE", "Usage", "estimate_tokens", "estimate_usage"]

#: Characters per token assumed by the estimate: OpenAI's published rule of thumb for English
#: text with its BPE tokenizers. It is a rough mean, good to maybe +-30% on prose and worse on code
#: or non-Latin scripts, which is enough to rank costs when a server gives no counts at all.
CHARS_PER_TOKEN = 4

#: Tokens added per chat message for the role and the chat template's delimiters (OpenAI's cookbook
#: counts 3 per message for its chat format; other templates are in the same range).
TOKENS_PER_MESSAGE = 3


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens consumed by one call.

    ``input_tokens`` counts every prompt token the provider processed (for Anthropic this includes
    cache reads and writes, which it reports separately), ``output_tokens`` every generated token.
    ``estimated`` is true when at least one of the two counts was not reported by the server but
    estimated from text (see :func:`estimate_usage`).
    """

    input_tokens: int
    output_tokens: int
    estimated: bool = False

    def __post_init__(self) -> None:
        for field in ("input_tokens", "output_tokens"):
            value = getattr(self, field)
            # bool is an int subclass; a True token count is a bug upstream, not "1 token".
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Usage.{field} must be a non-negative integer, got {value!r}")

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


def estimate_tokens(text: str) -> int:
    """Estimate the tokens in ``text``: ``ceil(len(text) / CHARS_PER_TOKEN)``, 0 for "".

    >>> estimate_tokens(""), estimate_tokens("abcd"), estimate_tokens("abcde")
    (0, 1, 2)
    """
    return -(-len(text) // CHARS_PER_TOKEN)


def estimate_usage(
    messages: Iterable[Message],
    text: str,
    *,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
) -> Usage:
    """Fill in the counts a server did not report, and mark the result estimated if any was missing.

    The prompt estimate is ``estimate_tokens`` of each message's content plus
    ``TOKENS_PER_MESSAGE`` per message; the output estimate is ``estimate_tokens(text)``.

    >>> estimate_usage([{"role": "user", "content": "Hi there"}], "Hello!")
    Usage(input_tokens=5, output_tokens=2, estimated=True)
    >>> estimate_usage([], "x", input_tokens=7, output_tokens=1)
    Usage(input_tokens=7, output_tokens=1, estimated=False)
    """
    estimated = input_tokens is None or output_tokens is None
    if input_tokens is None:
        input_tokens = sum(
            estimate_tokens(message["content"]) + TOKENS_PER_MESSAGE for message in messages
        )
    if output_tokens is None:
        output_tokens = estimate_tokens(text)
    return Usage(input_tokens=input_tokens, output_tokens=output_tokens, estimated=estimated)
