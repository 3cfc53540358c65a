"""What provider modules use to read responses: bounded JSON decoding, field checks, in-band
errors, and the :class:`Parsed` result and :class:`StreamParser` protocol they produce.

Responses are hostile input. Decoding is bounded in size (the HTTP layer stops reading at
``max_response_bytes``) and in depth (a ``RecursionError`` of the decoder is a malformed
response), token counts above :data:`MAX_TOKENS` are refused (``10**400`` would overflow pricing),
and answer text must be valid Unicode (a lone surrogate cannot be encoded to send or score it).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pickllm.backends.sse import SSEEvent

__all__ = [
    "MAX_TOKENS",
    "InBandError",
    "Parsed",
    "ResponseProtocolError",
    "StreamParser",
    "StreamState",
    "check_text",
    "error_detail",
    "error_from_payload",
    "load_json",
    "optional_str",
    "token_count",
]

#: The largest token count a response may report: far above any context window, and small
#: enough that tokens times any finite price per million stays a finite float.
MAX_TOKENS = 10**12

# Error types that providers put in error bodies and stream error events, by the HTTP status they
# stand for (Anthropic's documented types, OpenAI's and vLLM's usual ones).
_ERROR_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class ResponseProtocolError(Exception):
    """Internal: the response breaks the provider's protocol (becomes MalformedResponseError)."""


class InBandError(Exception):
    """Internal: the server sent an error payload with a success status (mid-stream, usually)."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(slots=True)
class Parsed:
    """What a provider parser extracts from a response; None counts are estimated later."""

    text: str
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    response_id: str | None = None


class StreamParser(Protocol):
    """Accumulates one provider's stream events into a :class:`Parsed`."""

    @property
    def done(self) -> bool:
        """True once the provider's terminal event has arrived."""
        ...

    def feed(self, event: SSEEvent) -> str:
        """Consume one event; return the text it adds ("" for none)."""
        ...

    def finish(self) -> Parsed:
        """The result at the end of the stream; raises ResponseProtocolError if it was cut off."""
        ...


class StreamState:
    """What every provider's :class:`StreamParser` gathers from its events (the answer's parts,
    its metadata and token counts, whether the terminal event came) and the :class:`Parsed` it
    makes of them; a subclass reads one provider's events into it."""

    __slots__ = (
        "_done",
        "_finish_reason",
        "_id",
        "_input_tokens",
        "_model",
        "_output_tokens",
        "_parts",
    )

    def __init__(self) -> None:
        self._done = False
        self._parts: list[str] = []
        self._finish_reason: str | None = None
        self._model: str | None = None
        self._id: str | None = None
        self._input_tokens: int | None = None
        self._output_tokens: int | None = None

    @property
    def done(self) -> bool:
        return self._done

    def _parsed(self) -> Parsed:
        """What was gathered, as the stream's result (once the subclass found it whole)."""
        return Parsed(
            text="".join(self._parts),
            model=self._model,
            input_tokens=self._input_tokens,
            output_tokens=self._output_tokens,
            finish_reason=self._finish_reason,
            response_id=self._id,
        )


def load_json(text: str, what: str) -> Any:
    """Parse JSON or raise ResponseProtocolError naming ``what`` and quoting the start of it.

    >>> load_json("[" * 100_000, "response body")
    Traceback (most recent call last):
    ...
    pickllm.backends._parsing.ResponseProtocolError: response body is nested too deeply
    """
    try:
        return json.loads(text)
    except RecursionError:
        # The C decoder recurses once per level and stops at the interpreter's recursion limit.
        raise ResponseProtocolError(f"{what} is nested too deeply") from None
    except ValueError:  # also integers of more than sys.get_int_max_str_digits() digits
        excerpt = text[:200] + ("..." if len(text) > 200 else "")
        raise ResponseProtocolError(f"{what} is not valid JSON: {excerpt!r}") from None


def optional_str(value: object) -> str | None:
    """Metadata (ids, model names, finish reasons) of the wrong type is treated as absent."""
    return value if isinstance(value, str) else None


def token_count(container: Mapping[str, Any], key: str, where: str) -> int | None:
    """A token count from a usage object: None if absent or null, else an int in
    [0, MAX_TOKENS]."""
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ResponseProtocolError(f"{where}.{key} must be a non-negative integer, got {value!r}")
    if value > MAX_TOKENS:
        # Formatted as a float: a 400-digit integer in a message helps nobody.
        raise ResponseProtocolError(
            f"{where}.{key} must be at most {MAX_TOKENS:.0e} (no call has that many tokens), "
            f"got {float(value) if value < 10**308 else math.inf:.3g}"
        )
    return value


def check_text(text: str, what: str) -> str:
    """``text`` if it is valid Unicode; a lone surrogate (JSON allows ``"\\ud800"``) could be
    neither sent on nor scored."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ResponseProtocolError(
            f"{what} holds a lone surrogate at index {error.start}; not valid Unicode"
        ) from None
    return text


def error_from_payload(payload: Mapping[str, Any]) -> InBandError:
    """Turn ``{"error": {...}}`` / ``{"type": "error", "error": {...}}`` into an InBandError."""
    error = payload.get("error")
    if isinstance(error, Mapping):
        kind = optional_str(error.get("type"))
        code = error.get("code")
        message = str(error.get("message") or kind or code or "error")
        # vLLM puts the HTTP status in "code"; OpenAI a word ("rate_limit_exceeded") in "code"
        # beside a "type"; Anthropic only a "type".
        if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599:
            status: int | None = code
        else:
            status = _ERROR_TYPE_STATUS.get(kind or "") or _ERROR_TYPE_STATUS.get(str(code))
        label = kind or optional_str(code)
        return InBandError(status, f"{label}: {message}" if label else message)
    return InBandError(None, str(error))


def error_detail(body: bytes, encoding: str | None) -> str:
    """The useful part of an error body: the provider's message if it is JSON, else the text."""
    try:
        text = body.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset
        text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):
        payload = None
    if isinstance(payload, Mapping):
        if "error" in payload:
            return error_from_payload(payload).detail
        for key in ("message", "detail"):
            if key in payload:
                return str(payload[key])
    return text.strip()
