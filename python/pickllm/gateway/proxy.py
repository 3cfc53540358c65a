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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from pickllm.backends.errors import retry_after_of
from pickllm.gateway.config import ModelConfig

__all__ = ["DONE", "Answer", "Limits", "Stream", "Upstream", "UpstreamError"]

#: The last event of an OpenAI stream.
DONE = b"data: [DONE]\n\n"

#: Bytes of an error body kept (passed back to the client for a 4xx).
MAX_ERROR_BYTES = 64 * 1024
#: Characters per token when a server reports no usage (as pickllm.backends.usage).
CHARS_PER_TOKEN = 4


class UpstreamError(Exception):
    """A failed upstream call. ``kind`` classifies it for metrics; ``blames_model`` (as on
    :class:`~pickllm.backends.errors.BackendError`) says whether it counts against the model
    (fed back as zero accuracy, fallback) or is the request's own fault (a 4xx other than
    408/429, passed back to the client as is)."""

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
        return self.kind != "http_4xx"


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

    def text(self) -> str:
        try:
            return str(self.body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            return ""


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
    ttft: float | None = None
    usage: Usage | None = None
    output_chars: int = 0
    #: Bytes read so far (held to ``limits.max_bytes``).
    received: int = 0
    #: The answer's text, kept only when asked (for a judge).
    parts: list[str] | None = None
    done: bool = False
    finished: bool = False
    #: Seconds from the request to the last event.
    latency: float = 0.0

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
        if not (self.done or self.finished):
            raise UpstreamError(
                "broken_stream",
                "the upstream stream ended before its answer was complete",
                latency=self.latency,
            )

    def text(self) -> str | None:
        return None if self.parts is None else "".join(self.parts)

    def final_usage(self) -> Usage:
        if self.usage is not None:
            return self.usage
        return Usage(
            -(-self.prompt_chars // CHARS_PER_TOKEN),
            -(-self.output_chars // CHARS_PER_TOKEN),
            estimated=True,
        )

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
        except aiohttp.ClientError as error:
            raise UpstreamError(
                "connect",
                f"{self.name}: {type(error).__name__}: {error}",
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
            answer = json.loads(raw)
            if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
                raise ValueError("no choices")
        except ValueError:
            raise UpstreamError(
                "malformed",
                f"{self.name}: the answer is not a chat completion",
                latency=latency,
            ) from None
        answer["model"] = self.name
        return Answer(answer, latency, _usage(answer.get("usage"), prompt_chars, answer))

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
            parts=[] if keep_text else None,
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
    """Parse the upstream's SSE lines into events; yield each event to forward, as bytes."""
    data: list[bytes] = []
    pending = bytearray()  # bytes after the last complete line (bounded by max_bytes)
    while chunk := await _chunk(stream):
        cut = chunk.rfind(b"\n")
        pending += chunk
        if cut < 0:
            continue
        end = len(pending) - len(chunk) + cut
        lines = bytes(pending[:end]).split(b"\n")
        del pending[: end + 1]
        for line in lines:
            line = line.rstrip(b"\r")
            if line:
                if line.startswith(b"data:"):
                    data.append(line[5:].lstrip())
                continue
            if not data:
                continue
            payload = b"\n".join(data)
            data.clear()
            out = _event(stream, payload)
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


def _event(stream: Stream, payload: bytes) -> bytes | None:
    """One event's bytes to forward (None to drop it), recording TTFT, usage and text size."""
    if payload == b"[DONE]":
        stream.done = True
        return DONE
    try:
        chunk = json.loads(payload)
    except ValueError:
        raise UpstreamError(
            "malformed",
            "the upstream sent an event that is not JSON",
            latency=time.perf_counter() - stream.started,
        ) from None
    if not isinstance(chunk, dict) or "error" in chunk:
        raise UpstreamError(
            "broken_stream",
            "the upstream sent an error event",
            latency=time.perf_counter() - stream.started,
        )
    choices = chunk.get("choices") or []
    for choice in choices:
        delta = choice.get("delta") or {} if isinstance(choice, dict) else {}
        text = delta.get("content") if isinstance(delta, dict) else None
        if text:
            if stream.ttft is None:
                stream.ttft = time.perf_counter() - stream.started
            stream.output_chars += len(text)
            if stream.parts is not None:
                stream.parts.append(text)
        if isinstance(choice, dict) and choice.get("finish_reason"):
            stream.finished = True
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        stream.usage = _usage(usage, stream.prompt_chars, None)
        if not choices and stream.strip_usage:
            return None  # the client did not ask for the usage chunk we requested
    if stream.rename is not None:
        chunk["model"] = stream.rename
        payload = json.dumps(chunk, separators=(",", ":")).encode()
    return b"data: " + payload + b"\n\n"


def _usage(usage: Any, prompt_chars: int, answer: dict[str, Any] | None) -> Usage:
    reported: dict[str, Any] = usage if isinstance(usage, dict) else {}
    prompt: int = reported.get("prompt_tokens", -1)  # checked by _count below
    completion: int = reported.get("completion_tokens", -1)
    estimated = False
    if not _count(prompt):
        prompt, estimated = -(-prompt_chars // CHARS_PER_TOKEN), True
    if not _count(completion):
        chars = 0
        for choice in (answer or {}).get("choices") or []:
            message = choice.get("message") if isinstance(choice, dict) else None
            text = message.get("content") if isinstance(message, dict) else None
            chars += len(text) if isinstance(text, str) else 0
        completion, estimated = -(-chars // CHARS_PER_TOKEN), True
    return Usage(prompt, completion, estimated)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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
