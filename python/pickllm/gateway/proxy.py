"""Calls to one OpenAI-compatible upstream: the client's whole request body is forwarded (tools,
response_format, ...) with ``model`` replaced, and streamed answers pass through event by event
as they arrive.

aiohttp is the client: under concurrency it costs a fraction of httpx's CPU per request (see
docs/performance.md). A call fails with :class:`UpstreamError` before its first byte reaches the
client (connection refused, timeout, 429, 5xx, an error instead of the first event), which lets
the gateway fall back to another model; once bytes flow, a broken stream can only be reported.

Each call runs within its :class:`Limits`: a deadline for the whole answer (every byte, not each
read, so a server dripping one byte a second cannot hold it) and a cap on the bytes read,
counted as they arrive, so an endless body or stream costs at most that much memory.

Answers are read by the backends' hardened parsing (:mod:`pickllm.backends.openai`,
:mod:`pickllm.backends.sse`): bounded depth, token counts at most ``MAX_TOKENS``, valid Unicode.
Errors name the model by its configured name only: never its URL, host or port, and never what
the upstream wrote (which may echo a key; see :mod:`pickllm.gateway.redact`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pickllm.backends._parsing import (
    InBandError,
    Parsed,
    ResponseProtocolError,
    check_text,
    load_json,
)
from pickllm.backends.errors import retry_after_of
from pickllm.backends.openai import ChatStream, parse_chat_completion
from pickllm.backends.sse import SSEDecoder, SSEEvent
from pickllm.gateway.config import ModelConfig

__all__ = ["DONE", "Answer", "Limits", "Stream", "Upstream", "UpstreamError"]

#: The last event of an OpenAI stream.
DONE = b"data: [DONE]\n\n"

#: Bytes of an error body kept (its redacted message is passed back for a 4xx).
MAX_ERROR_BYTES = 64 * 1024
#: Statuses that say the deployment is broken (a revoked key, an unpaid account, a retired model
#: id, a wrong base_url), not the request: the model's failure, with a fallback.
DEPLOYMENT_STATUSES = frozenset({401, 402, 403, 404, 405, 410})
#: Errors of our own machine running out of something (descriptors, ports, memory): never the
#: model's failure.
LOCAL_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.EADDRNOTAVAIL}
)
#: Characters per token when a server reports no usage (as pickllm.backends.usage).
CHARS_PER_TOKEN = 4


class UpstreamError(Exception):
    """A failed upstream call. ``kind`` classifies it for metrics; ``blames_model`` (as on
    :class:`~pickllm.backends.errors.BackendError`) says whether it counts against the model
    (fed back as zero accuracy, fallback) or not: the request's own fault ("http_4xx": a 4xx
    other than 408, 429 and the deployment statuses, passed back redacted) or our own machine's
    ("local": out of file descriptors or ports, which no model could have helped)."""

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        latency: float,
        status: int | None = None,
        retry_after: float | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after
        self.latency = latency
        self.body = body

    @property
    def blames_model(self) -> bool:
        return self.kind not in ("http_4xx", "local")


@dataclass(frozen=True)
class Limits:
    """What one call may take: until ``deadline`` (on the event loop's clock; None: no end),
    described in errors as ``deadline_name``, and at most ``max_bytes`` of answer (None:
    unbounded)."""

    deadline: float | None = None
    deadline_name: str = "deadline"
    max_bytes: int | None = None

    def expired(self, name: str, started: float) -> UpstreamError:
        return UpstreamError(
            "deadline",
            f"{name}: no complete answer within the {self.deadline_name}",
            latency=time.perf_counter() - started,
        )

    def exceeded(self, name: str, started: float) -> UpstreamError:
        return UpstreamError(
            "too_large",
            f"{name}: the answer exceeds max_response_bytes = {self.max_bytes}",
            latency=time.perf_counter() - started,
        )


@dataclass
class Usage:
    input_tokens: int
    output_tokens: int
    estimated: bool


@dataclass
class Answer:
    """A whole (non-streamed) answer."""

    body: dict[str, Any]
    latency: float
    usage: Usage
    parsed: Parsed

    def text(self) -> str:
        return self.parsed.text


@dataclass
class Stream:
    """A streamed answer whose first event has arrived; iterate it for the SSE bytes."""

    response: aiohttp.ClientResponse
    started: float
    name: str
    limits: Limits
    rename: str | None
    strip_usage: bool
    prompt_chars: int
    first: list[bytes] = field(default_factory=list)
    #: The parsed events, one generator for the whole stream (it holds partial lines).
    source: AsyncIterator[bytes] | None = None
    #: The backends' parser of OpenAI stream chunks: checks them, holds text and usage.
    parser: ChatStream = field(default_factory=ChatStream)
    ttft: float | None = None
    output_chars: int = 0
    #: Bytes read so far (held to ``limits.max_bytes``).
    received: int = 0
    #: Whether the answer's text is wanted (for a judge).
    keep_text: bool = False
    #: Seconds from the request to the last event.
    latency: float = 0.0
    result: Parsed | None = None

    async def events(self) -> AsyncIterator[bytes]:
        """The SSE bytes to send on, the first event included. Raises UpstreamError if the
        stream breaks (the caller reports it to the client and the learner)."""
        for chunk in self.first:
            yield chunk
        self.first.clear()
        assert self.source is not None, "opened by Upstream.stream"
        async for chunk in self.source:
            yield chunk
        self.latency = time.perf_counter() - self.started
        try:
            self.result = self.parser.finish()
        except ResponseProtocolError:
            raise UpstreamError(
                "broken_stream",
                f"{self.name}: the stream ended before its answer was complete",
                latency=self.latency,
            ) from None

    def text(self) -> str | None:
        if not self.keep_text:
            return None
        return self.result.text if self.result is not None else None

    def final_usage(self) -> Usage:
        if self.result is not None:
            return _usage(self.result, self.prompt_chars, self.output_chars)
        return _usage(Parsed(""), self.prompt_chars, self.output_chars)

    def release(self) -> None:
        """The answer is complete: give the connection back to the pool for reuse."""
        self.response.release()

    def close(self) -> None:
        """Drop the connection unless released (cancels the upstream call if still running)."""
        self.response.close()


class Upstream:
    """One configured model: its URL, key, request defaults and the shared aiohttp session."""

    def __init__(
        self, name: str, config: ModelConfig, api_key: str | None, session: aiohttp.ClientSession
    ) -> None:
        self.name = name
        self.config = config
        self.model_id = config.model_id or name
        self.url = f"{config.base_url}/chat/completions"
        self.headers = {"Content-Type": "application/json"}
        if api_key is not None:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.session = session
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.timeout, sock_read=config.timeout
        )

    def _payload(self, body: dict[str, Any], stream: bool) -> bytes:
        forwarded = dict(body)
        forwarded["model"] = self.model_id
        cap = self.config.max_tokens
        if cap is not None:
            for key in ("max_tokens", "max_completion_tokens"):
                if key in forwarded and isinstance(forwarded[key], int):
                    forwarded[key] = min(forwarded[key], cap)
            if "max_completion_tokens" not in forwarded:
                forwarded["max_tokens"] = min(forwarded.get("max_tokens", cap), cap)
        if stream:
            options = dict(forwarded.get("stream_options") or {})
            options["include_usage"] = True
            forwarded["stream_options"] = options
        return json.dumps(forwarded, separators=(",", ":")).encode()

    async def _send(self, payload: bytes, started: float) -> aiohttp.ClientResponse:
        try:
            response = await self.session.post(
                self.url,
                data=payload,
                headers=self.headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise UpstreamError(
                "timeout",
                f"{self.name}: no response within {self.config.timeout} s",
                latency=time.perf_counter() - started,
            ) from None
        except (aiohttp.ClientError, OSError) as error:
            # Never str(error): aiohttp's messages name the host and port.
            cause = error.os_error if isinstance(error, aiohttp.ClientConnectorError) else error
            if isinstance(cause, OSError) and cause.errno in LOCAL_ERRNOS:
                raise UpstreamError(
                    "local",
                    f"the gateway is out of resources ({errno.errorcode[cause.errno]})",
                    latency=time.perf_counter() - started,
                ) from None
            raise UpstreamError(
                "connect",
                f"{self.name}: could not connect ({type(error).__name__})",
                latency=time.perf_counter() - started,
            ) from None
        if response.status != 200:
            await _refuse(self.name, response, started)
        return response

    async def complete(
        self, body: dict[str, Any], prompt_chars: int, limits: Limits = Limits()
    ) -> Answer:
        """A whole answer; its ``model`` field names this model."""
        started = time.perf_counter()
        async with _until(limits, self.name, started):
            response = await self._send(self._payload(body, stream=False), started)
            try:
                raw = await _read(response, started, self.name, limits)
            except BaseException:
                response.close()  # unread bytes may follow: never reuse this connection
                raise
            response.release()
        latency = time.perf_counter() - started
        try:
            answer = load_json(raw.decode("utf-8", errors="replace"), "response body")
            parsed = parse_chat_completion(answer)
            check_text(parsed.text, "the answer")
        except (ResponseProtocolError, InBandError):
            raise UpstreamError(
                "malformed",
                f"{self.name}: the answer is not a valid chat completion",
                latency=latency,
            ) from None
        answer["model"] = self.name
        return Answer(answer, latency, _usage(parsed, prompt_chars, len(parsed.text)), parsed)

    async def stream(
        self,
        body: dict[str, Any],
        prompt_chars: int,
        *,
        keep_text: bool = False,
        limits: Limits = Limits(),
    ) -> Stream:
        """Open a streamed answer and read up to its first event (so that a failure before
        any byte reached the client can still fall back). ``limits`` hold for the whole
        stream, its events read later included."""
        started = time.perf_counter()
        async with _until(limits, self.name, started):
            response = await self._send(self._payload(body, stream=True), started)
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        stream = Stream(
            response,
            started,
            self.name,
            limits,
            rename=None if self.model_id == self.name else self.name,
            strip_usage=not wants_usage,
            prompt_chars=prompt_chars,
            keep_text=keep_text,
        )
        stream.source = _events(stream)
        try:
            first = await anext(stream.source, None)
            if first is not None:
                stream.first.append(first)
        except BaseException:
            response.close()
            raise
        if not stream.first:
            response.close()
            raise UpstreamError(
                "broken_stream",
                f"{self.name}: the stream ended before its first event",
                latency=time.perf_counter() - started,
            )
        return stream


async def _events(stream: Stream) -> AsyncIterator[bytes]:
    """Decode the upstream's SSE bytes into events; yield each event to forward, as bytes."""
    decoder = SSEDecoder()
    while chunk := await _chunk(stream):
        for event in decoder.feed_bytes(chunk):
            out = _event(stream, event.data)
            if out is not None:
                yield out


async def _chunk(stream: Stream) -> bytes:
    """The next bytes of a stream (b"" at its end), within its limits."""
    limits = stream.limits
    try:
        async with _until(limits, stream.name, stream.started):
            chunk = await stream.response.content.readany()
    except (TimeoutError, aiohttp.ClientError) as error:
        raise UpstreamError(
            "broken_stream",
            f"the upstream stream broke: {type(error).__name__}",
            latency=time.perf_counter() - stream.started,
        ) from None
    stream.received += len(chunk)
    if limits.max_bytes is not None and stream.received > limits.max_bytes:
        raise limits.exceeded(stream.name, stream.started)
    return chunk


def _event(stream: Stream, data: str) -> bytes | None:
    """One event's bytes to forward (None to drop it), checked by the backends' parser, which
    also records the text and usage; records TTFT and the text's size."""
    if data.strip() == "[DONE]":
        stream.parser.feed(SSEEvent("message", data))
        return DONE
    try:
        chunk = load_json(data, "stream chunk")
        text = stream.parser.feed_chunk(chunk)
        check_text(text, "the answer")
    except ResponseProtocolError:
        raise UpstreamError(
            "malformed",
            f"{stream.name}: the upstream sent an event that is not a valid chunk",
            latency=time.perf_counter() - stream.started,
        ) from None
    except InBandError:
        raise UpstreamError(
            "broken_stream",
            f"{stream.name}: the upstream sent an error event",
            latency=time.perf_counter() - stream.started,
        ) from None
    if text:
        if stream.ttft is None:
            stream.ttft = time.perf_counter() - stream.started
        stream.output_chars += len(text)
    if not chunk.get("choices") and isinstance(chunk.get("usage"), dict) and stream.strip_usage:
        return None  # the client did not ask for the usage chunk we requested
    if stream.rename is None:
        return b"data: " + data.encode() + b"\n\n"
    chunk["model"] = stream.rename
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def _usage(parsed: Parsed, prompt_chars: int, output_chars: int) -> Usage:
    """The answer's token counts as reported (checked by the parser), else estimated."""
    prompt, completion = parsed.input_tokens, parsed.output_tokens
    estimated = prompt is None or completion is None
    if prompt is None:
        prompt = -(-prompt_chars // CHARS_PER_TOKEN)
    if completion is None:
        completion = -(-output_chars // CHARS_PER_TOKEN)
    return Usage(prompt, completion, estimated)


@contextlib.asynccontextmanager
async def _until(limits: Limits, name: str, started: float) -> AsyncIterator[None]:
    """Cancel what runs inside at ``limits.deadline``: an UpstreamError of kind "deadline"."""
    if limits.deadline is None:
        yield
        return
    timeout = asyncio.timeout_at(limits.deadline)
    try:
        async with timeout:
            yield
    except TimeoutError:
        if timeout.expired():
            raise limits.expired(name, started) from None
        raise


async def _read(
    response: aiohttp.ClientResponse, started: float, name: str, limits: Limits
) -> bytes:
    """The whole body, counted as it arrives: refused past ``limits.max_bytes``."""
    chunks: list[bytes] = []
    size = 0
    try:
        while chunk := await response.content.readany():
            size += len(chunk)
            if limits.max_bytes is not None and size > limits.max_bytes:
                raise limits.exceeded(name, started)
            chunks.append(chunk)
    except (TimeoutError, aiohttp.ClientError) as error:
        raise UpstreamError(
            "broken_stream",
            f"{name}: the answer broke off: {type(error).__name__}",
            latency=time.perf_counter() - started,
        ) from None
    return b"".join(chunks)


async def _refuse(name: str, response: aiohttp.ClientResponse, started: float) -> None:
    """Raise the UpstreamError of a non-200 answer (its body kept for 4xx pass-through)."""
    status = response.status
    try:
        body = await response.content.read(MAX_ERROR_BYTES)
    except (TimeoutError, aiohttp.ClientError):
        body = b""
    finally:
        response.release()
    latency = time.perf_counter() - started
    # As the backends read it (seconds, an HTTP-date, retry-after-ms); held to the router's
    # max_retry_after by its Health, whatever the server asks.
    retry_after = retry_after_of(response.headers)
    if status == 429:
        kind = "http_429"
    elif status >= 500:
        kind = "http_5xx"
    elif status == 408:
        kind = "timeout"
    elif status in DEPLOYMENT_STATUSES:
        kind = "deployment"
    else:
        kind = "http_4xx"
    raise UpstreamError(
        kind,
        f"{name}: HTTP {status}",
        latency=latency,
        status=status,
        retry_after=retry_after,
        body=body,
    )
