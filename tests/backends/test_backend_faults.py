"""Failures of both HTTP backends against a real local server, sync and async.

Each failure must raise exactly one BackendError subclass that names the backend and the model,
carries the latency until the failure, and never retries (the server sees one request).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from modes import complete_in
from pickllm.backends import (
    Anthropic,
    BackendConnectionError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    ClientError,
    Completion,
    MalformedResponseError,
    Message,
    OpenAICompatible,
    RateLimitError,
    ServerError,
)
from pickllm.backends._http import HTTPBackend
from pickllm.errors import PickLLMError

pytestmark = pytest.mark.anyio

MESSAGES: list[Message] = [{"role": "user", "content": "What is 2+2?"}]
MODEL = "some-model"


def sse_data(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


def sse_event(name: str, obj: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(obj)}\n\n"


@dataclass(frozen=True)
class Provider:
    """What differs between the providers, for the tests that are otherwise the same."""

    name: str
    make: Callable[..., HTTPBackend]
    ok: dict[str, Any]
    stream: list[str]  # a whole stream whose text is "4"
    error: Callable[[str, str], dict[str, Any]]  # (type, message) -> error body


def _openai_chunk(content: str | None, finish: str | None = None) -> str:
    delta = {} if content is None else {"content": content}
    return sse_data(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


OPENAI = Provider(
    name="openai",
    make=lambda url, **kw: OpenAICompatible(url + "/v1", api_key="sk-faults-key-1234", **kw),
    ok={
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 1, "total_tokens": 13},
    },
    stream=[
        _openai_chunk(""),
        _openai_chunk("4"),
        _openai_chunk(None, "stop"),
        sse_data(
            {
                "id": "chatcmpl-1",
                "choices": [],
                "usage": {"prompt_tokens": 12, "completion_tokens": 1},
            }
        ),
        "data: [DONE]\n\n",
    ],
    error=lambda kind, message: {
        "error": {"message": message, "type": kind, "param": None, "code": None}
    },
)

ANTHROPIC = Provider(
    name="anthropic",
    make=lambda url, **kw: Anthropic(api_key="sk-ant-faults-key-1234", base_url=url, **kw),
    ok={
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "4"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 1},
    },
    stream=[
        sse_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "type": "message",
                    "role": "assistant",
                    "content": [],
                    "model": MODEL,
                    "stop_reason": None,
                    "usage": {"input_tokens": 12, "output_tokens": 1},
                },
            },
        ),
        sse_event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        sse_event(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": "4"},
            },
        ),
        sse_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
        sse_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 1},
            },
        ),
        sse_event("message_stop", {"type": "message_stop"}),
    ],
    error=lambda kind, message: {
        "type": "error",
        "error": {"type": kind, "message": message},
        "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
    },
)


@pytest.fixture(params=[OPENAI, ANTHROPIC], ids=lambda p: p.name)
def provider(request: pytest.FixtureRequest) -> Provider:
    result: Provider = request.param
    return result


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    result: str = request.param
    return result


@pytest.fixture
async def backend(provider: Provider, server: Any) -> AsyncIterator[HTTPBackend]:
    b = provider.make(server.url, timeout=2.0)
    yield b
    await b.aclose()


async def call(backend: HTTPBackend, mode: str, **kwargs: Any) -> Completion:
    kwargs.setdefault("model", MODEL)
    return await complete_in(mode, backend, MESSAGES, **kwargs)


async def failure(backend: HTTPBackend, mode: str, **kwargs: Any) -> BackendError:
    started = time.perf_counter()
    with pytest.raises(BackendError) as info:
        await call(backend, mode, **kwargs)
    elapsed = time.perf_counter() - started
    error = info.value
    # Every error names the backend and model and carries a plausible latency.
    assert isinstance(error, PickLLMError)
    assert error.backend == backend.label
    assert error.model == MODEL
    assert 0 <= error.latency <= elapsed
    assert backend.label in str(error)
    assert repr(MODEL) in str(error)
    # The httpx exception is not chained (it may quote headers), and nothing was retried.
    assert error.__cause__ is None
    assert error.__suppress_context__ or error.__context__ is None
    return error


async def test_success_baseline(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    server.queue(server.json(provider.ok), server.sse(provider.stream))
    assert (await call(backend, mode)).text == "4"
    streamed = await call(backend, mode, stream=True)
    assert streamed.text == "4"
    assert streamed.usage.input_tokens == 12


@pytest.mark.parametrize("stream", [False, True])
async def test_429_with_retry_after_seconds(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str, stream: bool
) -> None:
    body = provider.error("rate_limit_error", "Rate limit reached for requests")
    server.queue(server.json(body, 429, headers={"Retry-After": "7"}))
    error = await failure(backend, mode, stream=stream)
    assert type(error) is RateLimitError
    assert error.status == 429
    assert error.retry_after == 7.0
    assert "Rate limit reached for requests" in error.detail
    assert "retry after 7 s" in str(error)
    assert len(server.requests) == 1  # no retry inside the backend


async def test_429_with_retry_after_http_date(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    when = formatdate(time.time() + 30, usegmt=True)
    server.queue(
        server.json(
            provider.error("rate_limit_error", "slow down"), 429, headers={"Retry-After": when}
        )
    )
    error = await failure(backend, mode)
    assert isinstance(error, RateLimitError)
    assert error.retry_after is not None
    assert 27 <= error.retry_after <= 30


async def test_429_retry_after_ms_and_garbage(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    server.queue(
        server.json(
            provider.error("rate_limit_error", "a"),
            429,
            headers={"retry-after-ms": "1500", "Retry-After": "2"},
        ),
        server.json(
            provider.error("rate_limit_error", "b"), 429, headers={"Retry-After": "whenever"}
        ),
    )
    first = await failure(backend, mode)
    assert isinstance(first, RateLimitError)
    assert first.retry_after == 1.5
    second = await failure(backend, mode)
    assert isinstance(second, RateLimitError)
    assert second.retry_after is None


@pytest.mark.parametrize("status", [500, 502, 503, 529])
async def test_server_errors(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str, status: int
) -> None:
    server.queue(
        server.json(
            provider.error("api_error", "Internal server error"),
            status,
            headers={"Retry-After": "3"} if status == 503 else None,
        )
    )
    error = await failure(backend, mode)
    assert type(error) is ServerError
    assert error.status == status
    assert error.retry_after == (3.0 if status == 503 else None)
    assert f"HTTP {status}" in str(error)
    assert "Internal server error" in str(error)


@pytest.mark.parametrize("stream", [False, True])
async def test_5xx_with_html_body(
    backend: HTTPBackend, server: Any, mode: str, stream: bool
) -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    server.queue(server.raw(page, 502, "text/html"))
    error = await failure(backend, mode, stream=stream)
    assert isinstance(error, ServerError)
    assert "502 Bad Gateway" in error.detail


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "invalid_request_error"), (401, "authentication_error"), (404, "not_found_error")],
)
async def test_client_errors(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str, status: int, kind: str
) -> None:
    server.queue(server.json(provider.error(kind, f"{kind} happened"), status))
    error = await failure(backend, mode)
    assert type(error) is ClientError
    assert error.status == status
    assert f"{kind} happened" in str(error)


async def test_redirect_is_not_followed(backend: HTTPBackend, server: Any, mode: str) -> None:
    server.queue(server.raw(b"", 301, "text/plain", headers={"Location": "/elsewhere"}))
    error = await failure(backend, mode)
    assert type(error) is MalformedResponseError
    assert "unexpected HTTP status 301" in str(error)


@pytest.mark.parametrize(
    "body",
    [b"this is not json", b"", b"\xff\xfe\x00garbage", b'{"truncated": ', b"[1, 2, 3]"],
    ids=["text", "empty", "binary", "truncated", "array"],
)
async def test_garbage_body(backend: HTTPBackend, server: Any, mode: str, body: bytes) -> None:
    server.queue(server.raw(body, 200))
    error = await failure(backend, mode)
    assert type(error) is MalformedResponseError
    assert "malformed response" in str(error)


def _without(body: dict[str, Any], path: str) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    target = copy
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    del target[last]
    return copy


@pytest.mark.parametrize(
    ("provider_name", "path", "message"),
    [
        ("openai", "choices", "'choices' is missing"),
        ("openai", "choices.0.message", "'choices[0].message.content' is missing"),
        ("openai", "choices.0.message.content", "'choices[0].message.content' is missing"),
        ("anthropic", "content", "'content' is missing"),
        ("anthropic", "content.0.text", "'content[0].text' is missing"),
    ],
)
async def test_valid_json_with_missing_fields(
    server: Any, mode: str, provider_name: str, path: str, message: str
) -> None:
    provider = OPENAI if provider_name == "openai" else ANTHROPIC
    server.queue(server.json(_without(provider.ok, path)))
    async with provider.make(server.url, timeout=2.0) as backend:
        error = await failure(backend, mode)
    assert type(error) is MalformedResponseError
    assert message in str(error)


async def test_wrong_usage_types(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    body = json.loads(json.dumps(provider.ok))
    key = "prompt_tokens" if provider is OPENAI else "input_tokens"
    body["usage"][key] = -5
    server.queue(server.json(body))
    error = await failure(backend, mode)
    assert type(error) is MalformedResponseError
    assert f"usage.{key} must be a non-negative integer, got -5" in str(error)


async def test_missing_optional_fields_fall_back(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    body = {k: v for k, v in provider.ok.items() if k not in ("id", "model", "usage")}
    server.queue(server.json(body))
    result = await call(backend, mode)
    assert result.model == MODEL  # the requested name
    assert result.response_id is None
    assert result.usage.estimated


async def test_slow_server_times_out(server: Any, provider: Provider, mode: str) -> None:
    server.queue(server.slow(2.0, server.json(provider.ok)))
    async with provider.make(server.url, timeout=httpx.Timeout(0.2)) as backend:
        error = await failure(backend, mode)
    assert type(error) is BackendTimeoutError
    assert isinstance(error, TimeoutError)
    assert "waiting for a response" in str(error)
    # Causal: the 0.2 s timeout fired, and before the server's answer 2 s in.
    assert 0.2 <= error.latency < 2.0


async def test_stream_stalling_mid_way_times_out(
    server: Any, provider: Provider, mode: str
) -> None:
    blocks: list[str | float] = [*provider.stream[:2], 2.0, *provider.stream[2:]]
    server.queue(server.sse(blocks))
    async with provider.make(server.url, timeout=httpx.Timeout(0.3)) as backend:
        error = await failure(backend, mode, stream=True)
    assert type(error) is BackendTimeoutError
    assert "waiting for the stream" in str(error)


async def test_stream_cut_off_mid_way(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    # The connection drops inside the chunked body: an incomplete HTTP message.
    server.queue(server.sse(provider.stream[:2], end="cut"))
    error = await failure(backend, mode, stream=True)
    assert type(error) is MalformedResponseError
    assert "cut off" in str(error)


async def test_stream_closed_cleanly_before_the_end(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    # A close-delimited body that ends after the first text: valid HTTP, broken stream.
    server.queue(server.sse(provider.stream[:2], end="eof"))
    error = await failure(backend, mode, stream=True)
    assert type(error) is MalformedResponseError
    assert "malformed stream" in str(error)
    assert "cut off" in str(error)


async def test_stream_cut_in_the_middle_of_an_event(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    half = provider.stream[1][: len(provider.stream[1]) // 2]
    server.queue(server.sse([provider.stream[0], half], end="eof"))
    error = await failure(backend, mode, stream=True)
    assert type(error) is MalformedResponseError


async def test_stream_with_garbage_event(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    server.queue(server.sse([provider.stream[0], "data: {not json\n\n", *provider.stream[1:]]))
    error = await failure(backend, mode, stream=True)
    assert type(error) is MalformedResponseError
    assert "not valid JSON" in str(error)


async def test_stream_hanging_after_its_final_event_still_succeeds(
    server: Any, provider: Provider, mode: str
) -> None:
    server.queue(server.sse(provider.stream, end="hang"))
    async with provider.make(server.url, timeout=httpx.Timeout(0.3)) as backend:
        result = await call(backend, mode, stream=True)
    assert result.text == "4"


@pytest.mark.parametrize(
    ("kind", "expected", "status"),
    [
        ("overloaded_error", ServerError, 529),
        ("rate_limit_error", RateLimitError, 429),
        ("api_error", ServerError, 500),
        ("invalid_request_error", ClientError, 400),
        ("something_new", ServerError, None),
    ],
)
async def test_error_event_mid_stream(
    backend: HTTPBackend,
    server: Any,
    provider: Provider,
    mode: str,
    kind: str,
    expected: type[BackendStatusError],
    status: int | None,
) -> None:
    body = provider.error(kind, "Overloaded")
    error_block = sse_event("error", body) if provider is ANTHROPIC else sse_data(body)
    server.queue(server.sse([*provider.stream[:2], error_block]))
    error = await failure(backend, mode, stream=True)
    assert type(error) is expected
    assert isinstance(error, BackendStatusError)
    assert error.status == status
    assert "Overloaded" in error.detail


async def test_vllm_style_error_chunk_with_numeric_code(server: Any, mode: str) -> None:
    chunk = sse_data(
        {
            "error": {
                "object": "error",
                "message": "context too long",
                "type": "BadRequestError",
                "param": None,
                "code": 400,
            }
        }
    )
    server.queue(server.sse([OPENAI.stream[0], chunk]))
    async with OPENAI.make(server.url, timeout=2.0) as backend:
        error = await failure(backend, mode, stream=True)
    assert isinstance(error, ClientError)
    assert error.status == 400
    assert "context too long" in str(error)


async def test_connection_refused(provider: Provider, mode: str, closed_port: int) -> None:
    async with provider.make(f"http://127.0.0.1:{closed_port}", timeout=2.0) as backend:
        error = await failure(backend, mode)
    assert type(error) is BackendConnectionError
    assert isinstance(error, ConnectionError)
    assert f"could not connect to http://127.0.0.1:{closed_port}" in str(error)


async def test_server_hangs_up_without_answering(
    backend: HTTPBackend, server: Any, mode: str
) -> None:
    server.queue(server.hang_up())
    error = await failure(backend, mode)
    assert type(error) is BackendConnectionError
    assert "connection lost before a response" in str(error)


async def test_backend_works_again_after_failures(
    backend: HTTPBackend, server: Any, provider: Provider, mode: str
) -> None:
    server.queue(
        server.hang_up(), server.sse(provider.stream[:2], end="cut"), server.json(provider.ok)
    )
    await failure(backend, mode)
    await failure(backend, mode, stream=True)
    assert (await call(backend, mode)).text == "4"
