"""Anthropic's Messages API (``POST /v1/messages``), plain and streamed.

Differences from the OpenAI shape that this module handles:

- system messages go to the top-level ``system`` field (several are joined with blank lines);
- ``max_tokens`` is required by the API, so the backend sends ``default_max_tokens`` when a call
  gives none;
- usage is ``input_tokens`` / ``output_tokens``; cache reads and writes are reported apart and are
  added to ``Usage.input_tokens`` (at the full input price: cache discounts are not modelled);
- a stream is a sequence of typed events: ``message_start`` (id, model, input tokens),
  ``content_block_start`` / ``content_block_delta`` (``text_delta``) / ``content_block_stop``,
  ``message_delta`` (stop reason, cumulative output tokens), ``message_stop``, with ``ping`` and
  ``error`` events possible anywhere.

>>> Anthropic(api_key="sk-ant-test")
Anthropic(base_url='https://api.anthropic.com', api_key='***', api_version='2023-06-01')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from pickllm.backends._http import DEFAULT_TIMEOUT, HTTPBackend
from pickllm.backends._parsing import (
    Parsed,
    ResponseProtocolError,
    StreamState,
    error_from_payload,
    load_json,
    optional_str,
    token_count,
)
from pickllm.backends.base import Message
from pickllm.backends.errors import InvalidRequestError
from pickllm.backends.sse import SSEEvent
from pickllm.errors import ConfigError

__all__ = ["Anthropic"]


class Anthropic(HTTPBackend):
    """A backend for Anthropic's Messages API.

    Args:
        api_key: sent as ``x-api-key``; when None, read from the environment variable
            ``api_key_env`` (``ANTHROPIC_API_KEY``). A key is required.
        base_url: the API root, without ``/v1``.
        api_version: the ``anthropic-version`` header.
        timeout: seconds for every phase, or an ``httpx.Timeout`` (default: 10 s to connect,
            120 s between bytes).
        headers: extra headers (e.g. ``anthropic-beta``).
        default_max_tokens: ``max_tokens`` sent when a call gives none (the API requires one).
        api_key_env: the environment variable read when ``api_key`` is None.
        limits: connection-pool limits (``httpx.Limits``).
        http_client: an ``httpx.Client`` to send sync calls with, instead of the backend's own
            pool; its owner closes it.
        async_http_client: the same for async calls, an ``httpx.AsyncClient``.
    """

    _path = "/v1/messages"

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str = "https://api.anthropic.com",
        api_version: str = "2023-06-01",
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        default_max_tokens: int = 1024,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        limits: httpx.Limits | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env) or None
        if api_key is None:
            where = f" or set {api_key_env}" if api_key_env else ""
            raise ConfigError(f"Anthropic needs an API key: pass api_key{where}")
        if not isinstance(api_key, str) or not api_key.strip():
            raise ConfigError("api_key must be a non-empty string (it is not shown here)")
        if (
            not isinstance(default_max_tokens, int)
            or isinstance(default_max_tokens, bool)
            or default_max_tokens <= 0
        ):
            raise ConfigError(
                f"default_max_tokens must be a positive integer, got {default_max_tokens!r}"
            )
        auth = {"x-api-key": api_key, "anthropic-version": api_version}
        super().__init__(
            base_url=base_url,
            auth_headers=auth,
            headers=headers,
            timeout=timeout,
            limits=limits,
            http_client=http_client,
            async_http_client=async_http_client,
        )
        self._api_version = api_version
        self._default_max_tokens = default_max_tokens

    def _repr_fields(self) -> list[str]:
        fields = super()._repr_fields()
        fields[1:1] = ["api_key='***'", f"api_version={self._api_version!r}"]
        return fields

    def _payload(
        self,
        messages: Sequence[Message],
        model: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
    ) -> dict[str, Any]:
        system: list[str] = []
        turns: list[dict[str, str]] = []
        for index, message in enumerate(messages):
            role = message["role"]
            if role == "system":
                system.append(message["content"])
            elif role in ("user", "assistant"):
                turns.append({"role": role, "content": message["content"]})
            else:
                raise InvalidRequestError(
                    f"messages[{index}]['role'] is {role!r}; the Messages API takes 'user', "
                    "'assistant' and 'system'"
                )
        if not turns:
            raise InvalidRequestError(
                "the Messages API needs at least one 'user' or 'assistant' message"
            )
        body: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens if max_tokens is not None else self._default_max_tokens,
            "messages": turns,
        }
        if system:
            body["system"] = "\n\n".join(system)
        if temperature is not None:
            body["temperature"] = temperature
        if stream:
            body["stream"] = True
        return body

    def _parse_response(self, data: Any) -> Parsed:
        # JSON objects decode to dicts: isinstance(x, dict), not the ABC check of Mapping
        # (ten times slower, and run a few times per answer).
        if not isinstance(data, dict):
            raise ResponseProtocolError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("type") == "error":
            raise error_from_payload(data)
        content = data.get("content")
        if not isinstance(content, list):
            raise ResponseProtocolError("'content' is missing or not a list of content blocks")
        text = "".join(_block_text(block, f"content[{i}]") for i, block in enumerate(content))
        input_tokens = output_tokens = None
        usage = data.get("usage")
        if isinstance(usage, dict):
            input_tokens = _input_tokens(usage)
            output_tokens = token_count(usage, "output_tokens", "usage")
        return Parsed(
            text=text,
            model=optional_str(data.get("model")),
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            finish_reason=optional_str(data.get("stop_reason")),
            response_id=optional_str(data.get("id")),
        )

    def _stream_parser(self) -> _MessageStream:
        return _MessageStream()


def _block_text(block: object, where: str) -> str:
    if not isinstance(block, dict):
        raise ResponseProtocolError(f"'{where}' is not a content block object")
    if block.get("type") != "text":
        return ""  # tool_use, thinking...: not part of the answer text
    text = block.get("text")
    if not isinstance(text, str):
        raise ResponseProtocolError(f"'{where}.text' is missing or not a string")
    return text


def _input_tokens(usage: Mapping[str, Any]) -> int | None:
    base = token_count(usage, "input_tokens", "usage")
    if base is None:
        return None
    cached = (
        token_count(usage, "cache_creation_input_tokens", "usage") or 0,
        token_count(usage, "cache_read_input_tokens", "usage") or 0,
    )
    return base + sum(cached)


class _MessageStream(StreamState):
    """Accumulates Messages API stream events up to ``message_stop`` (its stop reason is the
    finish reason)."""

    __slots__ = ("_started",)

    def __init__(self) -> None:
        super().__init__()
        self._started = False

    def feed(self, event: SSEEvent) -> str:
        payload = load_json(event.data, f"{event.event!r} event data")
        if not isinstance(payload, dict):
            raise ResponseProtocolError(f"{event.event!r} event data is not a JSON object")
        # The data's "type" repeats the SSE event name; it is the one the docs tell clients to use.
        kind = optional_str(payload.get("type")) or event.event
        if kind == "error":
            raise error_from_payload(payload)
        if kind == "message_start":
            message = payload.get("message")
            if not isinstance(message, dict):
                raise ResponseProtocolError("'message_start' event without a 'message' object")
            self._started = True
            self._id = optional_str(message.get("id"))
            self._model = optional_str(message.get("model"))
            usage = message.get("usage")
            if isinstance(usage, dict):
                self._input_tokens = _input_tokens(usage)
                self._output_tokens = token_count(usage, "output_tokens", "message.usage")
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            if not isinstance(delta, dict):
                raise ResponseProtocolError("'content_block_delta' event without a 'delta' object")
            if delta.get("type") == "text_delta":
                text = delta.get("text")
                if not isinstance(text, str):
                    raise ResponseProtocolError("'text_delta' without a string 'text'")
                if text:
                    self._parts.append(text)
                return text
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                self._finish_reason = optional_str(delta.get("stop_reason")) or self._finish_reason
            usage = payload.get("usage")
            if isinstance(usage, dict):
                # Counts here are cumulative for the whole message, so they replace earlier ones.
                output_tokens = token_count(usage, "output_tokens", "usage")
                if output_tokens is not None:
                    self._output_tokens = output_tokens
                input_tokens = _input_tokens(usage)
                if input_tokens is not None:
                    self._input_tokens = input_tokens
        elif kind == "message_stop":
            self._done = True
        # ping, content_block_start/stop and event types added later are ignored, as the API's
        # versioning policy asks of clients.
        return ""

    def finish(self) -> Parsed:
        if not self._started:
            raise ResponseProtocolError("stream ended without a 'message_start' event")
        # Without message_stop the answer is whole only if message_delta gave the stop reason.
        if not self._done and self._finish_reason is None:
            raise ResponseProtocolError(
                "stream ended before 'message_stop' and without a stop_reason (cut off)"
            )
        return self._parsed()
