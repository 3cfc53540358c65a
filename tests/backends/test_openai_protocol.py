"""OpenAICompatible against a real local server speaking OpenAI's documented wire format."""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import warnings
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from modes import MODES, complete_in
from pickllm.backends import Completion, Message, OpenAICompatible

pytestmark = pytest.mark.anyio

MESSAGES: list[Message] = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
]

# The response of POST /v1/chat/completions as OpenAI's API reference shows it.
CHAT_COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4.1-2025-04-14",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 19,
        "completion_tokens": 10,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": None,
}


def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
    """One ``chat.completion.chunk`` event as OpenAI streams it with include_usage."""
    body = {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
        "usage": None,
    }
    return f"data: {json.dumps(body)}\n\n"


USAGE_CHUNK = (
    "data: "
    + json.dumps(
        {
            "id": "chatcmpl-123",
            "object": "chat.completion.chunk",
            "created": 1694268190,
            "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_44709d6fcb",
            "choices": [],
            "usage": {"prompt_tokens": 19, "completion_tokens": 3, "total_tokens": 22},
        }
    )
    + "\n\n"
)

STREAM = [
    chunk({"role": "assistant", "content": "", "refusal": None}),
    chunk({"content": "Hello"}),
    chunk({"content": "!"}),
    chunk({"content": " How"}),
    chunk({}, "stop"),
    USAGE_CHUNK,
    "data: [DONE]\n\n",
]

KEY = "sk-proj-test-0123456789abcdef"


@pytest.fixture
async def backend(server: Any) -> AsyncIterator[OpenAICompatible]:
    b = OpenAICompatible(base_url=server.url + "/v1", api_key=KEY, timeout=5.0)
    yield b
    await b.aclose()


async def call(backend: OpenAICompatible, mode: str, **kwargs: Any) -> Completion:
    kwargs.setdefault("model", "gpt-4.1")
    return await complete_in(mode, backend, MESSAGES, **kwargs)


@MODES
async def test_plain_completion_request_and_response(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    server.queue(server.json(CHAT_COMPLETION))
    result = await call(backend, mode, max_tokens=64, temperature=0.2)

    request = server.last
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "model": "gpt-4.1",
        "messages": MESSAGES,
        "max_tokens": 64,
        "temperature": 0.2,
    }
    assert result.text == "Hello! How can I assist you today?"
    assert result.model == "gpt-4.1-2025-04-14"
    assert result.response_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
    assert result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (19, 10)
    assert result.usage.estimated is False
    assert result.time_to_first_token is None
    assert result.latency > 0


@MODES
async def test_optional_parameters_are_omitted(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    server.queue(server.json(CHAT_COMPLETION))
    await call(backend, mode)
    assert server.last.json == {"model": "gpt-4.1", "messages": MESSAGES}


@MODES
async def test_streaming_request_and_assembly(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    server.queue(server.sse(STREAM))
    result = await call(backend, mode, stream=True, max_tokens=16)

    assert server.last.json == {
        "model": "gpt-4.1",
        "messages": MESSAGES,
        "max_tokens": 16,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert result.text == "Hello! How"
    assert result.model == "gpt-4o-mini-2024-07-18"
    assert result.response_id == "chatcmpl-123"
    assert result.finish_reason == "stop"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (19, 3)
    assert not result.usage.estimated
    assert result.time_to_first_token is not None
    assert 0 < result.time_to_first_token <= result.latency


@MODES
async def test_time_to_first_token_waits_for_the_first_non_empty_delta(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    # The role chunk (empty content) comes at once; the first text 0.3 s later, the rest 0.2 s
    # after that: TTFT must measure the text, latency the whole stream.
    blocks: list[str | float] = [STREAM[0], 0.3, *STREAM[1:3], 0.2, *STREAM[3:]]
    server.queue(server.sse(blocks))
    result = await call(backend, mode, stream=True)
    assert result.time_to_first_token is not None
    # The server paused 0.3 s before the first text and 0.2 s after it. Lower bounds are causal;
    # the gap between TTFT and latency is checked at half the second pause, so that a loaded
    # machine's scheduling delays (milliseconds) cannot break it while a TTFT taken at the end
    # of the stream would.
    assert result.time_to_first_token >= 0.3
    assert result.latency >= 0.5
    assert result.latency - result.time_to_first_token >= 0.1
    assert result.text == "Hello! How"


@MODES
async def test_stream_without_usage_is_estimated(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    # Servers that ignore stream_options send no usage chunk.
    server.queue(server.sse([s for s in STREAM if s is not USAGE_CHUNK]))
    result = await call(backend, mode, stream=True)
    assert result.usage.estimated
    # "Hello! How" is 10 characters -> ceil(10 / 4); the prompt: (7 + 2) + 3 per message.
    assert result.usage.output_tokens == 3
    assert result.usage.input_tokens == 7 + 2 + 2 * 3


@MODES
async def test_response_without_usage_is_estimated(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    body = {k: v for k, v in CHAT_COMPLETION.items() if k != "usage"}
    server.queue(server.json(body))
    result = await call(backend, mode)
    assert result.usage.estimated
    assert result.usage.output_tokens == 9  # 34 characters


@MODES
async def test_stream_ended_after_finish_reason_without_done_is_whole(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    server.queue(server.sse(STREAM[:5], end="eof"))
    result = await call(backend, mode, stream=True)
    assert result.text == "Hello! How"
    assert result.finish_reason == "stop"
    assert result.usage.estimated


@MODES
async def test_server_answering_json_to_a_stream_request(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    server.queue(server.json(CHAT_COMPLETION))
    result = await call(backend, mode, stream=True)
    assert result.text == "Hello! How can I assist you today?"
    assert result.usage.output_tokens == 10
    assert result.time_to_first_token is None


@MODES
async def test_sse_details_comments_crlf_and_multiline_data(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    # Keep-alive comments, CRLF line ends and a JSON object split over two data lines are all
    # legal event-stream syntax.
    split = chunk({"content": "Hi"}).replace('"delta": ', '"delta":\ndata: ', 1)
    blocks = [": keep-alive\r\n\r\n", split.replace("\n", "\r\n"), chunk({}, "length")]
    server.queue(server.sse([*blocks, "data: [DONE]\n\n"]))
    result = await call(backend, mode, stream=True)
    assert result.text == "Hi"
    assert result.finish_reason == "length"


@MODES
async def test_unicode_line_separators_in_streamed_text(
    backend: OpenAICompatible, server: Any, mode: str
) -> None:
    # JSON may carry U+2028 / U+0085 unescaped (llama.cpp does); they are not line ends in SSE.
    text = "line\u2028sep\x85nel é"
    raw = chunk({"content": text}).replace(json.dumps(text), json.dumps(text, ensure_ascii=False))
    assert "\u2028" in raw
    server.queue(server.sse([STREAM[0], raw, *STREAM[4:]]))
    result = await call(backend, mode, stream=True)
    assert result.text == text


@MODES
async def test_refusal_with_null_content(backend: OpenAICompatible, server: Any, mode: str) -> None:
    body = json.loads(json.dumps(CHAT_COMPLETION))
    body["choices"][0]["message"].update(content=None, refusal="I can't help with that.")
    server.queue(server.json(body))
    result = await call(backend, mode)
    assert result.text == "I can't help with that."


async def test_connections_are_pooled_and_reused(backend: OpenAICompatible, server: Any) -> None:
    server.queue(*[server.json(CHAT_COMPLETION)] * 3, *[server.sse(STREAM)] * 2)
    for _ in range(3):
        await call(backend, "sync")
    for _ in range(2):
        await call(backend, "sync", stream=True)
    # One keep-alive connection served all five calls, streamed ones included.
    assert len({r.client_port for r in server.requests}) == 1
    server.queue(*[server.json(CHAT_COMPLETION)] * 3)
    for _ in range(3):
        await call(backend, "async")
    assert len({r.client_port for r in server.requests[5:]}) == 1


async def test_concurrent_async_calls(backend: OpenAICompatible, server: Any) -> None:
    n = 20
    server.queue(*[server.slow(0.05, server.json(CHAT_COMPLETION))] * n)
    results = await asyncio.gather(*(call(backend, "async", stream=False) for _ in range(n)))
    assert all(r.text == "Hello! How can I assist you today?" for r in results)
    assert len(server.requests) == n


def test_one_sync_backend_shared_by_threads(server: Any) -> None:
    n = 16
    server.queue(*[server.slow(0.05, server.json(CHAT_COMPLETION))] * n)
    with (
        OpenAICompatible(server.url + "/v1", api_key_env=None, timeout=5.0) as backend,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        results = list(pool.map(lambda _: backend.complete(MESSAGES, model="m"), range(n)))
    assert [r.usage.output_tokens for r in results] == [10] * n
    # The pool grew to serve the threads at once, and no more than that.
    assert 1 < len({r.client_port for r in server.requests}) <= 8


def test_async_client_survives_a_new_event_loop(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # asyncio.run twice: the pool opened in the first loop must not be reused in the second, and
    # a pool the caller never closed is closed when its loop shuts down (no "unclosed transport").
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    backend = OpenAICompatible(base_url=server.url + "/v1", api_key_env=None, timeout=5.0)
    server.queue(*[server.json(CHAT_COMPLETION)] * 3)

    async def once() -> str:
        result = await backend.acomplete(MESSAGES, model="m")
        return result.text

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        texts = [asyncio.run(once()) for _ in range(3)]
        gc.collect()
    assert texts == ["Hello! How can I assist you today?"] * 3
    assert len({r.client_port for r in server.requests}) == 3
    assert unraisable == []


def test_key_from_environment(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PROVIDER_KEY", "sk-from-env-123456")
    server.queue(server.json(CHAT_COMPLETION))
    with OpenAICompatible(server.url + "/v1", api_key_env="MY_PROVIDER_KEY") as backend:
        backend.complete(MESSAGES, model="m")
    assert server.last.headers["authorization"] == "Bearer sk-from-env-123456"


def test_no_key_sends_no_authorization(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server.queue(server.json(CHAT_COMPLETION), server.json(CHAT_COMPLETION))
    with OpenAICompatible(server.url + "/v1") as backend:
        backend.complete(MESSAGES, model="m")
    with OpenAICompatible(server.url + "/v1", api_key_env=None) as backend:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-be-read")
        backend.complete(MESSAGES, model="m")
    assert all("authorization" not in r.headers for r in server.requests)


def test_extra_headers_are_sent(server: Any) -> None:
    server.queue(server.json(CHAT_COMPLETION))
    headers = {"HTTP-Referer": "https://example.org/app", "X-Title": "pickllm tests"}
    with OpenAICompatible(server.url + "/v1", api_key=KEY, headers=headers) as backend:
        backend.complete(MESSAGES, model="m")
    assert server.last.headers["http-referer"] == "https://example.org/app"
    assert server.last.headers["x-title"] == "pickllm tests"


def test_trailing_slash_and_timeout_configuration(server: Any) -> None:
    server.queue(server.json(CHAT_COMPLETION))
    timeout = httpx.Timeout(3.0, connect=1.0)
    with OpenAICompatible(server.url + "/v1/", timeout=timeout, api_key_env=None) as backend:
        assert backend.timeout is timeout
        assert backend.base_url == server.url + "/v1"
        backend.complete(MESSAGES, model="m")
    assert server.last.path == "/v1/chat/completions"


def test_closed_backend_reopens_on_next_call(server: Any) -> None:
    server.queue(server.json(CHAT_COMPLETION), server.json(CHAT_COMPLETION))
    backend = OpenAICompatible(server.url + "/v1", api_key_env=None)
    backend.complete(MESSAGES, model="m")
    backend.close()
    backend.complete(MESSAGES, model="m")
    backend.close()
    assert len({r.client_port for r in server.requests}) == 2
