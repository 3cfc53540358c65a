"""OpenAI-compatible chat completions: OpenAI, vLLM, llama.cpp, Ollama, Together, Groq, OpenRouter.

One class serves every server that implements ``POST {base_url}/chat/completions`` as OpenAI
documents it. Usage comes from the response's ``usage`` (``prompt_tokens`` /
``completion_tokens``); a stream asks for it with ``stream_options: {"include_usage": true}``, and
servers that ignore that option get their counts estimated (``Usage.estimated``).

>>> backend = OpenAICompatible(base_url="http://127.0.0.1:8080/v1", api_key_env=None)
>>> backend
OpenAICompatible(base_url='http://127.0.0.1:8080/v1', api_key=None)

A call (needs a server; llama.cpp's ``llama-server`` or ``python -m llama_cpp.server`` will do)::

    with OpenAICompatible(base_url="http://127.0.0.1:8080/v1") as backend:
        answer = backend.complete([{"role": "user", "content": "2+2?"}], model="local",
                                  max_tokens=8, stream=True)
        print(answer.text, answer.usage, answer.time_to_first_token)
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
from pickllm.backends.sse import SSEEvent
from pickllm.errors import ConfigError

__all__ = ["ChatStream", "OpenAICompatible", "parse_chat_completion"]


class OpenAICompatible(HTTPBackend):
    """A backend for any OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        base_url: the API root, ending in the version: ``"https://api.openai.com/v1"``,
            ``"http://127.0.0.1:8080/v1"`` (llama.cpp, vLLM), ``"http://127.0.0.1:11434/v1"``
            (Ollama).
        api_key: sent as ``Authorization: Bearer <key>``. When None, it is read from the
            environment variable ``api_key_env`` if that is set; with no key at all no
            ``Authorization`` header is sent (local servers need none).
        timeout: seconds for every phase, or an ``httpx.Timeout`` (default: 10 s to connect,
            120 s between bytes).
        headers: extra headers for every request (e.g. OpenRouter's ``HTTP-Referer``). Values of
            headers whose names look like credentials are redacted like the key.
        api_key_env: the environment variable to read the key from; None never reads one. Note
            that the default sends an ``OPENAI_API_KEY`` found in the environment to whatever
            ``base_url`` says, as OpenAI's own client does: pass ``api_key_env=None`` (or another
            variable) for third-party servers.
        limits: connection-pool limits (``httpx.Limits``), shared by all calls.
        http_client: an ``httpx.Client`` to send sync calls with (proxies, mTLS, transports,
            event hooks), instead of the backend's own pool; its owner closes it.
        async_http_client: the same for async calls, an ``httpx.AsyncClient`` (bound to the
            event loop it is used in, as any AsyncClient).
    """

    _path = "/chat/completions"

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        headers: Mapping[str, str] | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        limits: httpx.Limits | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if api_key is None and api_key_env:
            api_key = os.environ.get(api_key_env) or None
        if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
            raise ConfigError("api_key must be a non-empty string (it is not shown here)")
        auth = {"Authorization": f"Bearer {api_key}"} if api_key is not None else {}
        super().__init__(
            base_url=base_url,
            auth_headers=auth,
            headers=headers,
            timeout=timeout,
            limits=limits,
            http_client=http_client,
            async_http_client=async_http_client,
        )
        self._has_key = api_key is not None

    def _repr_fields(self) -> list[str]:
        fields = super()._repr_fields()
        fields.insert(1, "api_key='***'" if self._has_key else "api_key=None")
        return fields

    def _payload(
        self,
        messages: Sequence[Message],
        model: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        }
        # max_tokens rather than max_completion_tokens: every compatible server (llama.cpp, vLLM,
        # Ollama...) knows it, and OpenAI still accepts it for its chat models.
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def _parse_response(self, data: Any) -> Parsed:
        return parse_chat_completion(data)

    def _stream_parser(self) -> ChatStream:
        return ChatStream()


def parse_chat_completion(data: Any) -> Parsed:
    """A decoded chat completion's answer and usage (also the gateway's parser)."""
    # JSON objects decode to dicts: isinstance(x, dict), not the ABC check of Mapping
    # (ten times slower, and run a few times per answer).
    if not isinstance(data, dict):
        raise ResponseProtocolError(f"expected a JSON object, got {type(data).__name__}")
    if "error" in data and "choices" not in data:
        raise error_from_payload(data)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ResponseProtocolError("'choices' is missing, empty or not a list of objects")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict) or "content" not in message:
        raise ResponseProtocolError("'choices[0].message.content' is missing")
    content = message["content"]
    if content is None:
        # null content: a tool call or a refusal; the refusal text is the model's answer.
        content = optional_str(message.get("refusal")) or ""
    if not isinstance(content, str):
        raise ResponseProtocolError(
            f"'choices[0].message.content' must be a string, got {type(content).__name__}"
        )
    input_tokens = output_tokens = None
    usage = data.get("usage")
    if isinstance(usage, dict):
        input_tokens = token_count(usage, "prompt_tokens", "usage")
        output_tokens = token_count(usage, "completion_tokens", "usage")
    return Parsed(
        text=content,
        model=optional_str(data.get("model")),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        finish_reason=optional_str(choice.get("finish_reason")),
        response_id=optional_str(data.get("id")),
    )


class ChatStream(StreamState):
    """Accumulates ``chat.completion.chunk`` events up to ``data: [DONE]``."""

    __slots__ = ()

    def feed(self, event: SSEEvent) -> str:
        if event.data.strip() == "[DONE]":
            self._done = True
            return ""
        return self.feed_chunk(load_json(event.data, "stream chunk"))

    def feed_chunk(self, chunk: Any) -> str:
        """Consume one decoded (non-[DONE]) event; return the text it adds."""
        if not isinstance(chunk, dict):
            raise ResponseProtocolError(f"stream chunk is not a JSON object: {chunk!r:.200}")
        if "error" in chunk and not chunk.get("choices"):
            # OpenAI and vLLM report a failure mid-stream as a data chunk with an "error" object.
            raise error_from_payload(chunk)
        self._id = self._id or optional_str(chunk.get("id"))
        self._model = self._model or optional_str(chunk.get("model"))
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._input_tokens = token_count(usage, "prompt_tokens", "usage")
            self._output_tokens = token_count(usage, "completion_tokens", "usage")
        choices = chunk.get("choices")
        if choices is None:
            choices = []
        if not isinstance(choices, list):
            raise ResponseProtocolError(f"stream chunk 'choices' is not a list: {choices!r:.200}")
        text = ""
        for choice in choices:
            # n > 1 is never requested; index 0 is the answer.
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if content is not None and not isinstance(content, str):
                    raise ResponseProtocolError(
                        f"'delta.content' must be a string, got {type(content).__name__}"
                    )
                text = content or ""
            self._finish_reason = optional_str(choice.get("finish_reason")) or self._finish_reason
        if text:
            self._parts.append(text)
        return text

    def finish(self) -> Parsed:
        # Without [DONE] the stream is whole only if a finish_reason arrived: then just the usage
        # chunk may be missing (it gets estimated). Anything else is a cut-off answer.
        if not self._done and self._finish_reason is None:
            raise ResponseProtocolError(
                "stream ended before 'data: [DONE]' and without a finish_reason (cut off)"
            )
        return self._parsed()
