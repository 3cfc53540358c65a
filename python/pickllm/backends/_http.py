"""The call of the HTTP backends: one request, read within its limits, parsed, timed, classified.

A provider module (openai.py, anthropic.py) only says how to build its request body and how to read
its response and stream events; :class:`HTTPBackend` does the rest the same way for every provider,
with one helper module per concern:

- :mod:`._pools`: the httpx clients (per event loop for async ones; or the ones injected);
  under asyncio, async requests go through :mod:`._transport` (aiohttp);
- :mod:`._limits`: the call's overall deadline and the cap on the bytes read;
- :mod:`._parsing`: bounded JSON decoding and checks of hostile fields;
- :mod:`._classify`: every failure turned into exactly one
  :class:`~pickllm.backends.errors.BackendError` subclass, with the latency until the failure,
  and never a retry;
- :mod:`._redact`: secrets (the API key, credential-looking headers) redacted from every message
  and log line; the httpx exception that caused an error is detached (``from None``), because
  some httpx/h11 errors quote header values.

Timing is wall-clock ``time.perf_counter`` from just before the request is sent, to the whole
answer (``latency``) and to the first non-empty text delta of a stream (time to first token).
Every response is read as a stream, plain bodies included, so that the limits hold while reading.
"""

from __future__ import annotations

import codecs
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

import httpx

from pickllm._closing import Closing
from pickllm.backends._classify import status_class, transport_failure
from pickllm.backends._limits import WATCHDOG, CallLimits, LimitExceededError
from pickllm.backends._parsing import (
    InBandError,
    Parsed,
    ResponseProtocolError,
    StreamParser,
    check_text,
    error_detail,
    load_json,
)
from pickllm.backends._pools import ClientPools, running_loop
from pickllm.backends._redact import Secrets, check_headers, excerpt
from pickllm.backends._url import checked_base_url
from pickllm.backends.base import Completion, Message, validate_call
from pickllm.backends.errors import (
    BackendError,
    ClientError,
    DeadlineExceededError,
    LocalCongestionError,
    MalformedResponseError,
    RateLimitError,
    ResponseTooLargeError,
    retry_after_of,
)
from pickllm.backends.sse import SSEDecoder
from pickllm.backends.usage import estimate_usage
from pickllm.errors import ConfigError

__all__ = ["DEFAULT_TIMEOUT", "HTTPBackend", "Parsed", "StreamParser"]

logger = logging.getLogger("pickllm.backends")

#: Default timeouts: 10 s to connect (a dead host should fail fast so the router can fall back),
#: 120 s between bytes (a long non-streamed generation sends nothing until it is done).
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=10.0)


class _Head(Protocol):
    """What the steps below read of a response: an ``httpx.Response`` (sync calls) or an
    :class:`~._pools.AsyncReply` (async ones)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


def _is_json(response: _Head) -> bool:
    # A server that ignores "stream": true answers with one JSON body; read it as such rather
    # than as an event stream with no events.
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _charset(response: _Head) -> str:
    """The charset the body declares if Python knows it, else UTF-8 (JSON's): what
    ``response.encoding`` says, without its parse of the content type by email.message (a few
    percent of a whole call's CPU)."""
    return _charset_of(response.headers.get("content-type", ""))


@functools.lru_cache(maxsize=64)
def _charset_of(content_type: str) -> str:
    # Cached: a server sends the same Content-Type with every answer.
    _, found, rest = content_type.lower().partition("charset=")
    if not found:
        return "utf-8"
    name = rest.split(";", 1)[0].strip().strip("\"'")
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


@dataclass(slots=True)
class _Call:
    """The state of one call, for timing and for classifying a failure."""

    model: str
    stream: bool
    limits: CallLimits
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
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._base_url = checked_base_url(base_url)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            if not timeout > 0:
                raise ConfigError(f"timeout must be > 0 seconds, got {timeout!r}")
            timeout = httpx.Timeout(float(timeout))
        elif not isinstance(timeout, httpx.Timeout):
            raise ConfigError(
                f"timeout must be seconds (float) or an httpx.Timeout, got {timeout!r}"
            )
        all_headers = {**dict(headers or {}), **dict(auth_headers)}
        check_headers(all_headers)
        self._url = self._base_url + self._path
        self._parsed_url = httpx.URL(self._url)  # parsed once, not per request
        self._timeout = timeout
        self._phases = timeout.as_dict()  # what async calls cut to their deadline
        self._header_names = tuple(sorted(headers or {}))
        self._secrets = Secrets.of_headers(all_headers)
        self._pools = ClientPools(
            headers=all_headers,
            timeout=timeout,
            limits=limits,
            http_client=http_client,
            async_http_client=async_http_client,
        )

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
        """The httpx timeouts every request uses (each network operation; a call's overall
        bound is the ``deadline`` it is given)."""
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

    def close(self) -> None:
        """Close the sync connection pool. A later call opens a new one. Injected clients are
        left to their owner.

        Async pools need an event loop to close: use :meth:`aclose` (or ``async with``) for them.
        """
        self._pools.close()

    async def aclose(self) -> None:
        """Close the sync pool and this event loop's async pool. A later call opens new ones."""
        await self._pools.aclose()

    # ----------------------------------------------------------------- calls

    def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stream: bool = False,
        deadline: float | None = None,
        max_response_bytes: int | None = None,
    ) -> Completion:
        """Send ``messages`` to ``model`` and return the whole answer (see :class:`Backend`)."""
        call, payload = self._prepare(
            messages, model, max_tokens, temperature, stream, deadline, max_response_bytes
        )
        client = self._pools.sync()
        call.limits.acquired = not self._pools.traced_sync  # untraced: blame as before
        entry = None
        try:
            request = client.build_request(
                "POST",
                self._parsed_url,
                json=payload,
                headers=self._pools.headers,
                timeout=call.limits.timeout(self._timeout),
                extensions={"trace": call.limits.trace},
            )
            entry = WATCHDOG.arm(call.limits)
            response = client.send(request, stream=True)
            try:
                call.responded = True
                call.limits.attach(response.extensions.get("network_stream"))
                if not response.is_success:
                    raise self._status_error(response, self._read_all(response, call), call)
                if call.stream and not _is_json(response):
                    self._begin_stream(call)
                    for chunk in response.iter_bytes():
                        self._on_bytes(chunk, call)
                    parsed = self._end_stream(call)
                else:
                    parsed = self._on_body(response, self._read_all(response, call))
            finally:
                # Before the connection can go back to the pool (see Watchdog.disarm).
                WATCHDOG.disarm(entry)
                response.close()
        except Exception as exc:
            WATCHDOG.disarm(entry)
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
        deadline: float | None = None,
        max_response_bytes: int | None = None,
    ) -> Completion:
        """The async twin of :meth:`complete`."""
        call, payload = self._prepare(
            messages, model, max_tokens, temperature, stream, deadline, max_response_bytes
        )
        call.limits.acquired = not self._pools.traced_async  # untraced: blame as before
        limits = call.limits
        loop = running_loop()
        try:
            async with self._pools.deadline_scope(limits.remaining(), loop):
                response = await self._pools.asend(
                    self._url,
                    payload,
                    timeouts=limits.phases(self._phases),
                    trace=limits.atrace,
                    deadline=limits.deadline,
                    loop=loop,
                )
                try:
                    call.responded = True
                    if not 200 <= response.status_code < 300:
                        body = await response.read(limits.count)
                        raise self._status_error(response, body, call)
                    if call.stream and not _is_json(response):
                        self._begin_stream(call)
                        async for chunk in response.chunks():
                            self._on_bytes(chunk, call)
                        parsed = self._end_stream(call)
                    else:
                        parsed = self._on_body(response, await response.read(limits.count))
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            # The deadline's timer or scope fired; an httpx timeout is not a TimeoutError.
            limits.expired = True
            parsed = self._recover_or_raise(exc, call)
        except Exception as exc:
            parsed = self._recover_or_raise(exc, call)
        return self._finish(parsed, messages, call)

    # ----------------------------------------------------------------- steps shared by both

    def _prepare(
        self,
        messages: Sequence[Message],
        model: str,
        max_tokens: int | None,
        temperature: float | None,
        stream: bool,
        deadline: float | None,
        max_response_bytes: int | None,
    ) -> tuple[_Call, dict[str, Any]]:
        """The call's state and its request body."""
        validate_call(messages, model, max_tokens, temperature)
        limits = CallLimits.checked(deadline, max_response_bytes)
        payload = self._payload(messages, model, max_tokens, temperature, stream)
        call = _Call(model=model, stream=stream, limits=limits, start=perf_counter())
        return call, payload

    @staticmethod
    def _read_all(response: httpx.Response, call: _Call) -> bytes:
        body = bytearray()
        for chunk in response.iter_bytes():
            call.limits.count(chunk)
            body += chunk
        return bytes(body)

    def _on_body(self, response: _Head, body: bytes) -> Parsed:
        text = body.decode(_charset(response), errors="replace")
        return self._parse_response(load_json(text, "response body"))

    def _begin_stream(self, call: _Call) -> None:
        call.parser = self._stream_parser()
        call.decoder = SSEDecoder()

    def _on_bytes(self, chunk: bytes, call: _Call) -> None:
        assert call.decoder is not None
        assert call.parser is not None
        call.limits.count(chunk)
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
        complete = call.parser is not None and call.parser.done
        if complete and isinstance(exc, httpx.HTTPError | LimitExceededError | TimeoutError):
            # The terminal event arrived; only the end of the body was lost (a server that hangs
            # or drops the connection after [DONE]/message_stop). The answer is whole.
            assert call.parser is not None
            return call.parser.finish()
        error = self._classify(exc, call)
        if error is exc:
            raise exc  # our own BackendError, or a bug that must keep its traceback
        logger.debug("POST %s model=%s failed: %s", self._url, call.model, error)
        raise error from None

    def _classify(self, exc: Exception, call: _Call) -> BaseException:
        if isinstance(exc, BackendError):
            return exc
        if isinstance(exc, LimitExceededError) and exc.what == "size":
            return self._error(ResponseTooLargeError, str(exc), call)
        if isinstance(exc, LimitExceededError | TimeoutError) or (
            isinstance(exc, httpx.HTTPError) and call.limits.passed()
        ):
            if not call.limits.acquired:
                # Still queued for one of our own connections: congestion on our side.
                return self._error(
                    LocalCongestionError,
                    "the deadline passed before the request left the local connection pool",
                    call,
                )
            return self._error(DeadlineExceededError, "the call's deadline passed", call)
        if isinstance(exc, ResponseProtocolError):
            what = "malformed stream" if call.stream else "malformed response"
            return self._error(MalformedResponseError, f"{what}: {exc}", call)
        if isinstance(exc, InBandError):
            detail = excerpt(self._secrets, exc.detail)
            status = "unknown status" if exc.status is None else f"status {exc.status}"
            return status_class(exc.status)(
                f"error in the response body ({status}): {detail}",
                backend=self.label,
                model=call.model,
                latency=perf_counter() - call.start,
                status=exc.status,
                detail=detail,
            )
        if isinstance(exc, httpx.HTTPError):
            row = transport_failure(exc)
            cls, what = row.before, row.before_what
            if call.responded:
                cls, what = row.after, row.after_what
            text = str(exc).strip()
            cause = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            return self._error(cls, f"{what.format(url=self._url)} ({cause})", call)
        # Not ours to classify (a bug; signals and cancellations are BaseException anyway).
        return exc

    def _error(self, cls: type[BackendError], message: str, call: _Call) -> BackendError:
        return cls(
            self._secrets.redact(message),
            backend=self.label,
            model=call.model,
            latency=perf_counter() - call.start,
        )

    def _status_error(self, response: _Head, body: bytes, call: _Call) -> BackendError:
        status = response.status_code
        detail = excerpt(self._secrets, error_detail(body, _charset(response)))
        if not 400 <= status <= 599:
            return self._error(
                MalformedResponseError,
                f"unexpected HTTP status {status} (redirects are not followed: check base_url)"
                + (f": {detail}" if detail else ""),
                call,
            )
        retry_after = retry_after_of(response.headers)
        cls = status_class(status)
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

    def _finish(self, parsed: Parsed, messages: Sequence[Message], call: _Call) -> Completion:
        latency = perf_counter() - call.start
        try:
            check_text(parsed.text, "the answer")
        except ResponseProtocolError as exc:
            raise self._classify(exc, call) from None
        usage = estimate_usage(
            messages,
            parsed.text,
            input_tokens=parsed.input_tokens,
            output_tokens=parsed.output_tokens,
        )
        if logger.isEnabledFor(logging.DEBUG):  # skips packing the arguments of every call
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
