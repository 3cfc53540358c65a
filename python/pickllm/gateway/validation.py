"""What the gateway reads from a client's request, checked before any upstream call is paid for.

Every field the gateway itself reads (the body's shape and depth, ``model``, ``messages``,
``stream``, ``stream_options``, the context, and every field that multiplies a call's cost:
``n``, ``best_of``, ``max_tokens``, ``max_completion_tokens``) is checked here; a bad value is a
400 with an OpenAI-style error body that names the field. Other fields are forwarded as given
and left to the upstream to judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request

from pickllm.gateway.errors import APIError

__all__ = [
    "CONTEXT_FIELD",
    "CONTEXT_HEADER",
    "MAX_CONTEXT",
    "MAX_DEPTH",
    "ChatRequest",
    "chat_request",
    "read_json",
]

#: The request header, and the body field, that name a request's context.
CONTEXT_HEADER = "x-pickllm-context"
CONTEXT_FIELD = "pickllm_context"
#: The longest context, in characters.
MAX_CONTEXT = 256
#: The deepest nesting of arrays and objects a request body may have (OpenAI's own requests,
#: tools and JSON schemas included, stay far below it).
MAX_DEPTH = 64
#: The largest token count a request may ask for (far above any context window).
MAX_TOKENS = 2**31 - 1


@dataclass(frozen=True)
class ChatRequest:
    """A checked chat completion request: what the gateway needs to route and bound it."""

    body: dict[str, Any]
    model: str
    stream: bool
    context: str | None
    #: Size of the request: body bytes and messages (they bound the prompt's tokens).
    prompt_bytes: int
    messages: int
    prompt_chars: int
    #: Answers the upstream generates for it (``n``, or ``best_of`` when larger).
    choices: int
    #: The smallest of ``max_tokens`` and ``max_completion_tokens``, if either is given.
    max_tokens: int | None


async def read_json(request: Request, limit: int, timeout: float) -> tuple[bytes, dict[str, Any]]:
    """The request body as a JSON object: at most ``limit`` bytes, read within ``timeout``
    seconds (a client that sends its body slowly cannot hold a connection), nested at most
    :data:`MAX_DEPTH` deep."""
    too_big = APIError(
        f"the request body exceeds {limit} bytes", status=413, code="request_too_large"
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    with anyio.move_on_after(timeout) as scope:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
    if scope.cancelled_caught:
        raise APIError(
            f"the request body did not arrive within {timeout:g} s",
            status=408,
            code="request_timeout",
        )
    raw = b"".join(chunks)
    try:
        body = json.loads(raw)
    except RecursionError:  # the C decoder recurses once per level
        raise _too_deep() from None
    except ValueError:
        raise APIError("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError("the request body must be a JSON object", code="invalid_json")
    _check_depth(body)
    return raw, body


def chat_request(raw: bytes, body: dict[str, Any], header_context: str | None) -> ChatRequest:
    """Check a chat completion body (``pickllm_context`` is removed from it: it is the
    gateway's own field, never forwarded)."""
    model = body.get("model")
    if not isinstance(model, str) or not 0 < len(model) <= 256:
        raise APIError("'model' must name a router or a model (a non-empty string)", param="model")
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    ):
        raise APIError(
            "'messages' must be a non-empty list of messages with a 'role'", param="messages"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(f"'stream' must be true or false, got {stream!r:.40}", param="stream")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise APIError("'stream_options' must be an object", param="stream_options")
        if not isinstance(options.get("include_usage", False), bool):
            raise APIError(
                "'stream_options.include_usage' must be true or false", param="stream_options"
            )
    n = _count(body, "n", 1)
    best_of = _count(body, "best_of", 1)
    limits = [_count(body, key, None) for key in ("max_tokens", "max_completion_tokens")]
    given = [limit for limit in limits if limit is not None]
    return ChatRequest(
        body=body,
        model=model,
        stream=stream,
        context=_context(header_context, body.pop(CONTEXT_FIELD, None)),
        prompt_bytes=len(raw),
        messages=len(messages),
        prompt_chars=_prompt_chars(messages),
        choices=max(n or 1, best_of or 1),
        max_tokens=min(given) if given else None,
    )


def _count(body: dict[str, Any], key: str, default: int | None) -> int | None:
    """An integer field that multiplies cost: a positive int, or null/absent (the default)."""
    value = body.get(key)
    if value is None:
        body.pop(key, None)  # null means "the default": not forwarded, so no upstream misreads it
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
        raise APIError(
            f"'{key}' must be a positive integer, got {json.dumps(value)[:40]}", param=key
        )
    return value


def _context(header: str | None, field: Any) -> str | None:
    """The request's context (the header wins over the body field). It goes back to the client
    in a response header, so it must be Latin-1 text without control characters."""
    context = header
    if context is None and field is not None:
        if not isinstance(field, str):
            raise APIError(f"'{CONTEXT_FIELD}' must be a string", param=CONTEXT_FIELD)
        context = field
    if context is None:
        return None
    if not 0 < len(context) <= MAX_CONTEXT:
        raise APIError(f"the context must have 1 to {MAX_CONTEXT} characters", param=CONTEXT_FIELD)
    if not all(" " <= ch <= "~" or "\xa0" <= ch <= "\xff" for ch in context):
        raise APIError(
            "the context must be printable Latin-1 text (no control characters, no characters "
            "beyond U+00FF): it is sent back in the x-pickllm-context header",
            param=CONTEXT_FIELD,
        )
    return context


def _prompt_chars(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        total += len(content) if isinstance(content, str) else len(json.dumps(content))
    return total


def _check_depth(body: dict[str, Any]) -> None:
    """Refuse nesting deeper than MAX_DEPTH (iteratively: no recursion for an attacker)."""
    level: list[Any] = [body]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
        if not level:
            return
    raise _too_deep()


def _too_deep() -> APIError:
    return APIError(
        f"the request body is nested more than {MAX_DEPTH} levels deep", code="invalid_json"
    )
