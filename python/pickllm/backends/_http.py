"""The machinery shared by the HTTP backends: clients, timing, error classification, redaction.

A provider module (openai.py, anthropic.py) only says how to build its request body and how to read
its response and stream events; :class:`HTTPBackend` does the rest the same way for every provider:

- one ``httpx.Client`` and one ``httpx.AsyncClient`` per backend (per event loop for the async one:
  an AsyncClient's pooled connections belong to the loop that opened them), created on first use
  and reused so that calls share keep-alive connections;
- wall-clock timing with ``time.perf_counter`` from just before the request is sent, to the whole
  answer (``latency``) and to the first non-empty text delta of a stream (time to first token);
- every failure turned into exactly one :class:`~pickllm.backends.errors.BackendError` subclass,
  with the latency until the failure, and never a retry;
- secrets (the API key, credential-looking headers) redacted from every message and log line, and
  the httpx exception that caused an error detached (``from None``), because some httpx/h11 errors
  quote header values.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import ssl
import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

import httpx

from pickllm._closing import Closing
from pickllm.backends.base import Completion, Message, validate_call
from pickllm.backends.errors import (
    BackendConnectionError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    ClientError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    parse_retry_after,
)
from pickllm.backends.sse import SSEDecoder, SSEEvent
from pickllm.backends.usage import estimate_usage
from pickllm.errors import ConfigError

__all__ = ["DEFAULT_TIMEOUT", "HTTPBackend"]

logger = logging.getLogger("pickllm.backends")

#: Default timeouts: 10 s to connect (a dead host should fail fast so the router can fall back),
#: 120 s between bytes (a long non-streamed generation sends nothing until it is done).
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)

#: How much of an error body is kept in exception messages.
_DETAIL_CHARS = 500

# Header names whose values are treated as secrets and redacted wherever they could surface.
_SENSITIVE_HINTS = ("auth", "key", "token", "secret", "cookie", "session", "password")

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


def load_json(text: str, what: str) -> Any:
    """Parse JSON or raise ResponseProtocolError naming ``what`` and quoting the start of it."""
    try:
        return json.loads(text)
    except ValueError:
        excerpt = text[:200] + ("..." if len(text) > 200 else "")
        raise ResponseProtocolError(f"{what} is not valid JSON: {excerpt!r}") from None


def optional_str(value: object) -> str | None:
    """Metadata (ids, model names, finish reasons) of the wrong type is treated as absent."""
    return value if isinstance(value, str) else None


def token_count(container: Mapping[str, Any], key: str, where: str) -> int | None:
    """A token count from a usage object: None if absent or null, else a non-negative int."""
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ResponseProtocolError(f"{where}.{key} must be a non-negative integer, got {value!r}")
    return value


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


def _error_detail(response: httpx.Response) -> str:
    """The useful part of an error body: the provider's message if it is JSON, else the text."""
    try:
        text = response.text
    except (UnicodeDecodeError, LookupError):
        return f"<{len(response.content)} bytes of undecodable body>"
    try:
        payload = json.loads(text)
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        if "error" in payload:
            return error_from_payload(payload).detail
        for key in ("message", "detail"):
            if key in payload:
                return str(payload[key])
    return text.strip()


def _is_json(response: httpx.Response) -> bool:
    # A server that ignores "stream": true answers with one JSON body; read it as such rather
    # than as an event stream with no events.
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _is_sensitive(header: str) -> bool:
    name = header.lower()
    return any(hint in name for hint in _SENSITIVE_HINTS)


def _check_header_value(name: str, value: str) -> None:
    # h11 quotes an illegal header value in its exception message; check here with a message
    # that names the header only, so a key with a stray newline never ends up in a log.
    if not isinstance(value, str) or not all(" " <= ch <= "~" for ch in value):
        raise ConfigError(
            f"header {name!r} must be a string of printable ASCII characters "
            "(no newlines, tabs or non-ASCII); its value is not shown because it may be a secret"
        )


class _Secrets:
    """Strings to redact; its repr shows nothing, so it can sit in an object's __dict__."""

    __slots__ = ("_values",)

    def __init__(self, values: Sequence[str]) -> None:
        # "Bearer sk-..." is redacted as a whole and so is the bare token after the scheme, which
        # is what servers echo. Longest first, so a secret that contains another is replaced
        # whole. Very short values are skipped: replacing "a" everywhere would garble messages.
        found = {part for v in values for part in (v, v.partition(" ")[2].strip())}
        self._values = tuple(sorted({v for v in found if len(v) >= 4}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "***")
        return text

    def __repr__(self) -> str:
        return "<redacted>"


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~0.1 s, which httpx would pay for every client it builds (two
    # per backend, plus one per event loop). One context, read-only after creation, serves all.
    return httpx.create_ssl_context()


async def _close_with_loop(client: httpx.AsyncClient) -> AsyncGenerator[None, None]:
    """Parks at ``yield``; its ``finally`` closes ``client`` when the event loop shuts down.

    asyncio.run (and anyio.run) finalize every live async generator of their loop before closing
    it (``loop.shutdown_asyncgens``). A pool opened in a loop that the caller never closed
    explicitly is thereby still closed inside that loop, instead of leaking sockets that warn
    ("unclosed transport") at garbage collection.
    """
    try:
        yield
    finally:
        await client.aclose()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#: The key of the async client used outside asyncio (under trio, through anyio).
_NO_LOOP = object()


@dataclass(slots=True)
class _Call:
    """The state of one call, for timing and for classifying a failure."""

    model: str
    stream: bool
    start: float
    responded: bool = False
    parser: StreamParser | None = None
    decoder: SSEDecoder | None = None
    first_token: float | None = None


class HTTPBackend(Closing):
    """Base of the HTTP backends; subclasses implement the ``_payload``/``_parse*`` hooks."""

    #: Path appended to the base URL for a completion request.
    _path: str = ""

    def __init__(
        self,
        *,
        base_url: str,
        auth_headers: Mapping[str, str],
        headers: Mapping[str, str] | None,
        timeout: float | httpx.Timeout,
        limits: httpx.Limits | None,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except (TypeError, httpx.InvalidURL):
            url = None
        if url is None or url.scheme not in ("http", "https") or not url.host:
            # A URL with "@" may carry credentials: do not echo it.
            shown = "" if isinstance(base_url, str) and "@" in base_url else f", got {base_url!r}"
            raise ConfigError(f"base_url must be an http:// or https:// URL{shown}")
        if url.userinfo:
            # Credentials in the URL would show up in repr, logs and every error message.
            raise ConfigError(
                "base_url must not contain credentials (user:password@); pass the key as "
                "api_key or in headers"
            )
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            if not timeout > 0:
                raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
            timeout = httpx.Timeout(float(timeout))
        elif not isinstance(timeout, httpx.Timeout):
            raise ConfigError(
                f"timeout must be seconds (float) or an httpx.Timeout, got {timeout!r}"
            )
        all_headers = {**dict(headers or {}), **dict(auth_headers)}
        for name, value in all_headers.items():
            _check_header_value(name, value)
        self._base_url = str(url).rstrip("/")
        self._url = self._base_url + self._path
        self._timeout = timeout
        self._limits = limits if limits is not None else httpx.Limits()
        self._headers = all_headers
        self._header_names = tuple(sorted(headers or {}))
        self._secrets = _Secrets([v for k, v in all_headers.items() if _is_sensitive(k)])
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        # Async pools by event loop: an AsyncClient's connections belong to the loop that opened
        # them, and one backend may serve several loops (asyncio.run per script step, a loop per
        # test, a loop per thread).
        self._aclients: dict[object, tuple[httpx.AsyncClient, AsyncGenerator[None, None] | None]]
        self._aclients = {}

    # ----------------------------------------------------------------- provider hooks

    def _payload(
        self,
        messages: Sequence[Message],
        model: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
    ) -> dict[str, Any]:
        raise NotImplementedError

    def _parse_response(self, data: Any) -> Parsed:
        raise NotImplementedError

    def _stream_parser(self) -> StreamParser:
        raise NotImplementedError

    # ----------------------------------------------------------------- identity

    @property
    def base_url(self) -> str:
        """The base URL requests go to (without a trailing slash)."""
        return self._base_url

    @property
    def timeout(self) -> httpx.Timeout:
        """The httpx timeouts every request uses."""
        return self._timeout

    @property
    def label(self) -> str:
        """How errors and logs name this backend: class and base URL, never the key."""
        return f"{type(self).__name__}({self._base_url})"

    def _repr_fields(self) -> list[str]:
        fields = [f"base_url={self._base_url!r}"]
        if self._header_names:
            # Names only: header values may be credentials.
            fields.append(f"headers={list(self._header_names)!r}")
        return fields

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_fields())})"

    # ----------------------------------------------------------------- client lifecycle

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        headers=self._headers,
                        timeout=self._timeout,
                        limits=self._limits,
                        verify=_shared_ssl_context(),
                    )
                client = self._client
        return client

    async def _async_client(self) -> httpx.AsyncClient:
        loop = _running_loop()
        key = loop if loop is not None else _NO_LOOP
        closer = None
        with self._lock:
            # Pools of loops that have ended were closed by their closer; forget them.
            for dead in [k for k in self._aclients if isinstance(k, asyncio.AbstractEventLoop)]:
                if dead.is_closed():
                    del self._aclients[dead]
            entry = self._aclients.get(key)
            if entry is None:
                client = httpx.AsyncClient(
                    headers=self._headers,
                    timeout=self._timeout,
                    limits=self._limits,
                    verify=_shared_ssl_context(),
                )
                closer = _close_with_loop(client) if loop is not None else None
                self._aclients[key] = (client, closer)
            else:
                client = entry[0]
        if closer is not None:
            await anext(closer)  # the first step registers it with the loop's shutdown
        return client

    def close(self) -> None:
        """Close the sync connection pool. A later call opens a new one.

        Async pools need an event loop to close: use :meth:`aclose` (or ``async with``) for them.
        """
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the sync pool and this event loop's async pool. A later call opens new ones."""
        self.close()
        loop = _running_loop()
        with self._lock:
            entry = self._aclients.pop(loop if loop is not None else _NO_LOOP, None)
        if entry is not None:
            client, closer = entry
            if closer is not None:
                await closer.aclose()  # runs its finally: closes the client
            else:
                await client.aclose()

    # ----------------------------------------------------------------- calls

    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
    ) -> Completion:
        """Send ``messages`` to ``model`` and return the whole answer (see :class:`Backend`)."""
        validate_call(messages, model, max_tokens, temperature)
        payload = self._payload(messages, model, max_tokens, temperature, stream)
        client = self._sync_client()
        call = _Call(model=model, stream=stream, start=perf_counter())
        try:
            if stream:
                with client.stream("POST", self._url, json=payload) as response:
                    call.responded = True
                    if not response.is_success:
                        response.read()
                        raise self._status_error(response, call)
                    if _is_json(response):
                        response.read()
                        parsed = self._on_body(response, call)
                    else:
                        self._begin_stream(call)
                        for chunk in response.iter_bytes():
                            self._on_bytes(chunk, call)
                        parsed = self._end_stream(call)
            else:
                response = client.post(self._url, json=payload)
                call.responded = True
                parsed = self._on_body(response, call)
        except Exception as exc:
            parsed = self._recover_or_raise(exc, call)
        return self._finish(parsed, messages, call)

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
        validate_call(messages, model, max_tokens, temperature)
        payload = self._payload(messages, model, max_tokens, temperature, stream)
        client = await self._async_client()
        call = _Call(model=model, stream=stream, start=perf_counter())
        try:
            if stream:
                async with client.stream("POST", self._url, json=payload) as response:
                    call.responded = True
                    if not response.is_success:
                        await response.aread()
                        raise self._status_error(response, call)
                    if _is_json(response):
                        await response.aread()
                        parsed = self._on_body(response, call)
                    else:
                        self._begin_stream(call)
                        async for chunk in response.aiter_bytes():
                            self._on_bytes(chunk, call)
                        parsed = self._end_stream(call)
            else:
                response = await client.post(self._url, json=payload)
                call.responded = True
                parsed = self._on_body(response, call)
        except Exception as exc:
            parsed = self._recover_or_raise(exc, call)
        return self._finish(parsed, messages, call)

    # ----------------------------------------------------------------- steps shared by both

    def _on_body(self, response: httpx.Response, call: _Call) -> Parsed:
        if not response.is_success:
            raise self._status_error(response, call)
        try:
            text = response.text
        except (UnicodeDecodeError, LookupError):
            raise ResponseProtocolError("response body is not valid text") from None
        return self._parse_response(load_json(text, "response body"))

    def _begin_stream(self, call: _Call) -> None:
        call.parser = self._stream_parser()
        call.decoder = SSEDecoder()

    def _on_bytes(self, chunk: bytes, call: _Call) -> None:
        assert call.decoder is not None
        assert call.parser is not None
        for event in call.decoder.feed_bytes(chunk):
            # Anything after the terminal event is ignored, but still read: a body read to its
            # end lets httpx return the connection to the pool.
            if call.parser.done:
                return
            if call.parser.feed(event) and call.first_token is None:
                call.first_token = perf_counter() - call.start

    def _end_stream(self, call: _Call) -> Parsed:
        assert call.decoder is not None
        assert call.parser is not None
        if call.decoder.flush() and not call.parser.done:
            raise ResponseProtocolError("stream cut off in the middle of an event")
        return call.parser.finish()

    def _recover_or_raise(self, exc: Exception, call: _Call) -> Parsed:
        """Classify a failure; or keep a complete stream whose connection failed afterwards."""
        if isinstance(exc, httpx.HTTPError) and call.parser is not None and call.parser.done:
            # The terminal event arrived; only the end of the body was lost (a server that hangs
            # or drops the connection after [DONE]/message_stop). The answer is whole.
            return call.parser.finish()
        error = self._classify(exc, call)
        if error is exc:
            raise exc  # our own BackendError, or a bug that must keep its traceback
        logger.debug("POST %s model=%s failed: %s", self._url, call.model, error)
        raise error from None

    def _classify(self, exc: Exception, call: _Call) -> BaseException:
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, ResponseProtocolError):
            what = "malformed stream" if call.stream else "malformed response"
            return self._error(MalformedResponseError, f"{what}: {exc}", call)
        if isinstance(exc, InBandError):
            detail = self._secrets.redact(exc.detail)
            if len(detail) > _DETAIL_CHARS:
                detail = detail[:_DETAIL_CHARS] + "..."
            status = "unknown status" if exc.status is None else f"status {exc.status}"
            return self._status_class(exc.status)(
                f"error in the response body ({status}): {detail}",
                backend=self.label,
                model=call.model,
                latency=perf_counter() - call.start,
                status=exc.status,
                detail=detail,
            )
        if isinstance(exc, httpx.HTTPError):
            cause = self._describe(exc)
            if isinstance(exc, httpx.TimeoutException):
                phase = "waiting for the stream" if call.responded else "waiting for a response"
                return self._error(BackendTimeoutError, f"timed out {phase} ({cause})", call)
            if isinstance(exc, httpx.ConnectError | httpx.ProxyError):
                return self._error(
                    BackendConnectionError, f"could not connect to {self._url} ({cause})", call
                )
            if isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError):
                if call.responded:
                    return self._error(
                        MalformedResponseError, f"response cut off before its end ({cause})", call
                    )
                return self._error(
                    BackendConnectionError, f"connection lost before a response ({cause})", call
                )
            return self._error(BackendError, f"request failed ({cause})", call)
        # Not ours to classify (a bug, KeyboardInterrupt-like signals are BaseException anyway).
        return exc

    def _describe(self, exc: Exception) -> str:
        text = str(exc).strip()
        return self._secrets.redact(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)

    def _error(self, cls: type[BackendError], message: str, call: _Call) -> BackendError:
        return cls(
            self._secrets.redact(message),
            backend=self.label,
            model=call.model,
            latency=perf_counter() - call.start,
        )

    @staticmethod
    def _status_class(status: int | None) -> type[BackendStatusError]:
        if status == 429:
            return RateLimitError
        if status is not None and 400 <= status < 500:
            return ClientError
        return ServerError

    def _status_error(self, response: httpx.Response, call: _Call) -> BackendError:
        status = response.status_code
        detail = self._secrets.redact(_error_detail(response))
        if len(detail) > _DETAIL_CHARS:
            detail = detail[:_DETAIL_CHARS] + "..."
        if not 400 <= status <= 599:
            return self._error(
                MalformedResponseError,
                f"unexpected HTTP status {status} (redirects are not followed: check base_url)"
                + (f": {detail}" if detail else ""),
                call,
            )
        retry_after = self._retry_after(response.headers)
        cls = self._status_class(status)
        what = {RateLimitError: "rate limited", ClientError: "request refused"}.get(
            cls, "server error"
        )
        message = f"{what} (HTTP {status}"
        if retry_after is not None:
            message += f", retry after {retry_after:g} s"
        message += ")" + (f": {detail}" if detail else "")
        return cls(
            message,
            backend=self.label,
            model=call.model,
            latency=perf_counter() - call.start,
            status=status,
            retry_after=retry_after,
            detail=detail,
        )

    @staticmethod
    def _retry_after(headers: httpx.Headers) -> float | None:
        # OpenAI sends the finer "retry-after-ms" beside "retry-after"; prefer it when valid.
        milliseconds = headers.get("retry-after-ms")
        if milliseconds is not None:
            try:
                value = float(milliseconds)
            except ValueError:
                value = -1.0
            if 0 <= value < float("inf"):
                return value / 1000.0
        return parse_retry_after(headers.get("retry-after"))

    def _finish(self, parsed: Parsed, messages: Sequence[Message], call: _Call) -> Completion:
        latency = perf_counter() - call.start
        usage = estimate_usage(
            messages,
            parsed.text,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
        )
        logger.debug(
            "POST %s model=%s stream=%s ok in %.3f s (%d+%d tokens%s)",
            self._url,
            call.model,
            call.stream,
            latency,
            usage.input_tokens,
            usage.output_tokens,
            ", estimated" if usage.estimated else "",
        )
        return Completion(
            text=parsed.text,
            model=parsed.model or call.model,
            usage=usage,
            latency=latency,
            time_to_first_token=call.first_token,
            finish_reason=parsed.finish_reason,
            response_id=parsed.response_id,
        )
