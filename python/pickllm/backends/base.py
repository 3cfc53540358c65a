"""What every backend takes and returns: :class:`Message`, :class:`Completion`, :class:`Backend`.

A backend turns a list of chat messages into one :class:`Completion` for a named model, sync
(``complete``) or async (``acomplete``), optionally streaming so that the time to the first token
is measured. Anything with those methods (and ``close`` / ``aclose``) is a backend; the built-in
ones speak HTTP (:class:`~pickllm.backends.OpenAICompatible`, :class:`~pickllm.backends.Anthropic`)
and also work as context managers.

Limits. The router also bounds each call: ``deadline`` (an absolute ``time.monotonic()``, or None)
and ``max_response_bytes`` (or None). It passes them as keyword arguments to ``complete`` and
``acomplete`` when their signatures name them (``**kwargs`` does not count: wrappers often
forward it to methods that take neither). A backend written without them keeps working; the
router then cancels its ``acomplete`` at the deadline, while its sync calls and response sizes
are its own business. The built-in backends take both: past the deadline they raise
:class:`~pickllm.backends.errors.DeadlineExceededError`, past the cap
:class:`~pickllm.backends.errors.ResponseTooLargeError`.

A backend of your own needs no base class.

Examples:
    >>> import asyncio
    >>> class Echo:
    ...     def complete(self, messages, *, model, max_tokens=None, temperature=None, stream=False):
    ...         text = messages[-1]["content"]
    ...         return Completion(text=text, model=model, usage=Usage(1, 1), latency=0.0)
    ...     async def acomplete(self, messages, *, model, max_tokens=None, temperature=None,
    ...                         stream=False):
    ...         return self.complete(messages, model=model)
    ...     def close(self): pass
    ...     async def aclose(self): pass
    >>> isinstance(Echo(), Backend)
    True
    >>> Echo().complete([{"role": "user", "content": "hi"}], model="echo").text
    'hi'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, TypedDict, runtime_checkable

from pickllm.backends.errors import InvalidRequestError
from pickllm.backends.usage import Usage

__all__ = [
    "Backend",
    "Completer",
    "Completion",
    "Message",
    "Usage",
    "check_unicode",
    "validate_call",
]


class Message(TypedDict):
    """One chat message: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Completion:
    """The answer of one call, with what it cost in tokens and time.

    - ``text``: the generated text (all content blocks / deltas joined).
    - ``model``: the model name as the server reported it (it may differ from the one requested,
      e.g. a dated snapshot); the requested name when the server reported none.
    - ``usage``: token counts, ``usage.estimated`` when the server did not report them.
    - ``latency``: seconds from sending the request to having the whole answer.
    - ``time_to_first_token``: seconds from sending the request to the first non-empty text
      delta of a stream; None for a call that did not stream (or a stream with no text).
    - ``finish_reason``: the provider's own word, unchanged ("stop", "length", "end_turn",
      "max_tokens", ...), or None if it sent none.
    - ``response_id``: the provider's id of the response ("chatcmpl-...", "msg_..."), if any.
    """

    text: str
    model: str
    usage: Usage
    latency: float
    time_to_first_token: float | None = None
    finish_reason: str | None = None
    response_id: str | None = None


@runtime_checkable
class Completer(Protocol):
    """The two calls of a backend, all an LLM judge needs (see :class:`Backend`)."""

    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
    ) -> Completion:
        """Send ``messages`` to ``model`` and return its answer."""
        ...

    async def acomplete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
    ) -> Completion:
        """The async twin of :meth:`complete`."""
        ...


@runtime_checkable
class Backend(Completer, Protocol):
    """The interface a model's backend implements (structural: no base class needed).

    ``model`` is the provider's model name. ``max_tokens`` and ``temperature`` left at None use
    the backend's or the server's default. With ``stream=True`` the backend streams the answer
    and records ``Completion.time_to_first_token``; the result is the same complete answer.
    Failures raise :class:`~pickllm.backends.errors.BackendError` subclasses; backends do not
    retry.
    """

    def close(self) -> None:
        """Release the backend's sync resources (connection pool)."""
        ...

    async def aclose(self) -> None:
        """Release all of the backend's resources, async ones included."""
        ...


def check_unicode(text: str, what: str) -> None:
    """Refuse a string that cannot be encoded as UTF-8 (a lone surrogate such as ``"\\ud800"``,
    which Python strings may hold but no request body can carry).

    >>> check_unicode("caf\\u00e9", "content")
    >>> check_unicode("bad \\ud800", "content")
    Traceback (most recent call last):
    ...
    pickllm.backends.errors.InvalidRequestError: content holds a lone surrogate at index 4
    """
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidRequestError(f"{what} holds a lone surrogate at index {error.start}") from None


def validate_call(
    messages: Sequence[Message], model: str, max_tokens: int | None, temperature: float | None
) -> None:
    """Reject invalid call arguments before anything is sent (raises InvalidRequestError).

    >>> validate_call([{"role": "user", "content": "hi"}], "m", None, -1.0)
    Traceback (most recent call last):
    ...
    pickllm.backends.errors.InvalidRequestError: temperature must be a finite number >= 0, got -1.0
    """
    if not isinstance(model, str) or not model:
        raise InvalidRequestError(f"model must be a non-empty string, got {model!r}")
    check_unicode(model, "model")
    # type() first: a list of dicts, the usual case, skips the slower ABC checks.
    if type(messages) is not list and (
        isinstance(messages, str | bytes | Mapping) or not isinstance(messages, Sequence)
    ):
        raise InvalidRequestError(
            f"messages must be a sequence of {{'role': ..., 'content': ...}} dicts, "
            f"got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidRequestError("messages must not be empty")
    for index, message in enumerate(messages):
        if type(message) is not dict and not isinstance(message, Mapping):
            raise InvalidRequestError(
                f"messages[{index}] must be a dict with 'role' and 'content', "
                f"got {type(message).__name__}"
            )
        role, content = message.get("role"), message.get("content")
        if not isinstance(role, str) or not role:
            raise InvalidRequestError(
                f"messages[{index}]['role'] must be a non-empty string, got {role!r}"
            )
        if not isinstance(content, str):
            raise InvalidRequestError(
                f"messages[{index}]['content'] must be a string, got {type(content).__name__}"
            )
        check_unicode(role, f"messages[{index}]['role']")
        check_unicode(content, f"messages[{index}]['content']")
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0
    ):
        raise InvalidRequestError(f"max_tokens must be a positive integer, got {max_tokens!r}")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise InvalidRequestError(f"temperature must be a finite number >= 0, got {temperature!r}")
