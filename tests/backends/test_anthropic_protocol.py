"""Anthropic against a real local server speaking the Messages API's documented wire format."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from modes import MODES, complete_in
from pickllm.backends import Anthropic, Completion, InvalidRequestError, Message
from pickllm.errors import ConfigError

pytestmark = pytest.mark.anyio

KEY = "sk-ant-api03-test-0123456789abcdef"

MESSAGES: list[Message] = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Hello, Claude"},
]

# The response of POST /v1/messages as Anthropic's API reference shows it.
MESSAGE = {
    "content": [{"text": "Hi! My name is Claude.", "type": "text"}],
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "model": "claude-sonnet-4-5-20250929",
    "role": "assistant",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "type": "message",
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}


def event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


# The event sequence of the streaming guide's basic example.
STREAM = [
    event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-opus-4-6",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 25, "output_tokens": 1},
            },
        },
    ),
    event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    event("ping", {"type": "ping"}),
    event(
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    ),
    event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "!"}},
    ),
    event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    event("message_stop", {"type": "message_stop"}),
]


@pytest.fixture
async def backend(server: Any) -> AsyncIterator[Anthropic]:
    b = Anthropic(api_key=KEY, base_url=server.url, timeout=5.0)
    yield b
    await b.aclose()


async def call(backend: Anthropic, mode: str, **kwargs: Any) -> Completion:
    messages = kwargs.pop("messages", MESSAGES)
    kwargs.setdefault("model", "claude-sonnet-4-5")
    return await complete_in(mode, backend, messages, **kwargs)


@MODES
async def test_plain_message_request_and_response(
    backend: Anthropic, server: Any, mode: str
) -> None:
    server.queue(server.json(MESSAGE))
    result = await call(backend, mode, max_tokens=256, temperature=0.5)

    request = server.last
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.headers["x-api-key"] == KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert "authorization" not in request.headers
    assert request.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "You are a concise assistant.",
        "messages": [{"role": "user", "content": "Hello, Claude"}],
        "temperature": 0.5,
    }
    assert result.text == "Hi! My name is Claude."
    assert result.model == "claude-sonnet-4-5-20250929"
    assert result.response_id == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert result.finish_reason == "end_turn"
    assert (result.usage.input_tokens, result.usage.output_tokens) == (2095, 503)
    assert not result.usage.estimated
    assert result.time_to_first_token is None


@MODES
async def test_default_max_tokens_and_no_system(backend: Anthropic, server: Any, mode: str) -> None:
    server.queue(server.json(MESSAGE))
    await call(backend, mode, messages=[{"role": "user", "content": "Hi"}])
    assert server.last.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hi"}],
    }


@MODES
async def test_streaming_event_sequence(backend: Anthropic, server: Any, mode: str) -> None:
    server.queue(server.sse(STREAM))
    result = await call(backend, mode, stream=True)
    assert server.last.json["stream"] is True
    assert result.text == "Hello!"
    assert result.model == "claude-opus-4-6"
    assert result.response_id == "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"
    assert result.finish_reason == "end_turn"
    # input from message_start, output from message_delta (cumulative, replaces the 1).
    assert (result.usage.input_tokens, result.usage.output_tokens) == (25, 15)
    assert not result.usage.estimated
    assert result.time_to_first_token is not None
    assert result.time_to_first_token <= result.latency


@MODES
async def test_time_to_first_token_counts_text_not_ping(
    backend: Anthropic, server: Any, mode: str
) -> None:
    blocks: list[str | float] = [*STREAM[:3], 0.3, *STREAM[3:]]
    server.queue(server.sse(blocks))
    result = await call(backend, mode, stream=True)
    assert result.time_to_first_token is not None
    assert result.time_to_first_token >= 0.3


@MODES
async def test_several_system_messages_and_blocks(
    backend: Anthropic, server: Any, mode: str
) -> None:
    body = dict(
        MESSAGE,
        content=[
            {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
            {"type": "text", "text": "Part one. "},
            {"type": "text", "text": "Part two."},
        ],
        usage={
            "input_tokens": 10,
            "output_tokens": 4,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
        },
    )
    server.queue(server.json(body))
    messages: list[Message] = [
        {"role": "system", "content": "Rule one."},
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "system", "content": "Rule two."},
        {"role": "user", "content": "Q2"},
    ]
    result = await call(backend, mode, messages=messages)
    assert server.last.json["system"] == "Rule one.\n\nRule two."
    assert server.last.json["messages"] == [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "Q2"},
    ]
    assert result.text == "Part one. Part two."
    assert result.usage.input_tokens == 1110  # cache reads and writes are input too


@MODES
async def test_stream_cut_after_stop_reason_is_whole(
    backend: Anthropic, server: Any, mode: str
) -> None:
    server.queue(server.sse(STREAM[:-1], end="eof"))
    result = await call(backend, mode, stream=True)
    assert result.text == "Hello!"
    assert result.finish_reason == "end_turn"


async def test_unsupported_role_is_refused_before_sending(backend: Anthropic, server: Any) -> None:
    with pytest.raises(InvalidRequestError, match=r"messages\[1\]\['role'\] is 'tool'"):
        await backend.acomplete(
            [{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}], model="m"
        )
    with pytest.raises(InvalidRequestError, match="at least one 'user'"):
        await backend.acomplete([{"role": "system", "content": "x"}], model="m")
    assert server.requests == []


def test_key_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        Anthropic()


def test_key_from_environment_and_custom_version(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env-42")
    server.queue(server.json(MESSAGE))
    headers = {"anthropic-beta": "prompt-caching-2024-07-31"}
    with Anthropic(base_url=server.url, api_version="2024-01-01", headers=headers) as backend:
        backend.complete(MESSAGES, model="m")
    assert server.last.headers["x-api-key"] == "sk-ant-from-env-42"
    assert server.last.headers["anthropic-version"] == "2024-01-01"
    assert server.last.headers["anthropic-beta"] == "prompt-caching-2024-07-31"


def test_invalid_default_max_tokens() -> None:
    with pytest.raises(ConfigError, match="default_max_tokens"):
        Anthropic(api_key=KEY, default_max_tokens=0)
