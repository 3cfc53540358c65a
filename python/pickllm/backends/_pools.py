"""Connection pools of one backend: one ``httpx.Client``, and one ``httpx.AsyncClient`` per event
loop (an AsyncClient's pooled connections belong to the loop that opened them, and one backend
may serve several loops: ``asyncio.run`` per script step, a loop per test, a loop per thread).

Under asyncio the async client sends through :class:`~._transport.AiohttpTransport` (aiohttp's
connector: a fraction of httpx's CPU per request under concurrency); aiohttp is asyncio-only, so
outside asyncio (trio, through anyio) it keeps httpx's own transport.

Clients are created on first use and reused so that calls share keep-alive connections. A client
the user injected (``http_client=`` / ``async_http_client=``) is used as given, for every loop,
and never closed here: its owner closes it, as with any httpx client passed to a library.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
import threading
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Mapping,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import httpx

from pickllm.errors import ArgumentTypeError

if TYPE_CHECKING:  # aiohttp is imported with the first async pool, not with pickllm (~0.1 s)
    from multidict import CIMultiDict

    from pickllm.backends._transport import AiohttpTransport, Reply, Trace

__all__ = ["AsyncReply", "ClientPools", "running_loop"]

#: The key of the async client used outside asyncio (under trio, through anyio).
_NO_LOOP = object()

#: No scope at all (a nullcontext can be entered any number of times, also at once).
_NO_SCOPE: contextlib.AbstractAsyncContextManager[Any] = contextlib.nullcontext()

#: JSON bodies encoded as httpx encodes ``json=`` ones; one encoder for all (``json.dumps``
#: with these options builds a new one per call).
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _json_body() -> Callable[[Any], bytes]:
    """What encodes a request body: ``_JSON``'s C encoder itself, made once with ``_JSON``'s
    options (``_JSON.encode`` makes one per call, in Python: half of the encoding's cost),
    without the circular-reference check (bodies are built fresh by the backends); ``_JSON``
    where Python has no C encoder."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return lambda payload: _JSON.encode(payload).encode()
    encode = make(
        None,  # no circular-reference check
        _JSON.default,
        json.encoder.encode_basestring,  # ensure_ascii=False
        _JSON.indent,
        _JSON.key_separator,
        _JSON.item_separator,
        _JSON.sort_keys,
        _JSON.skipkeys,
        _JSON.allow_nan,
    )
    return lambda payload: "".join(encode(payload, 0)).encode()


#: ``_json_body()``: the request body of a JSON payload, as bytes.
_encode_json = _json_body()


class AsyncReply(Protocol):
    """A response to an async request, its body unread: :class:`~._transport.Reply` on our own
    pools under asyncio, :class:`_HttpxReply` on httpx's. Reading raises httpx's exceptions;
    the caller closes it."""

    status_code: int
    headers: Mapping[str, str]

    def chunks(self) -> AsyncIterable[bytes]:
        """The body's (decoded) chunks as they arrive."""
        ...

    async def read(self, count: Callable[[bytes], object]) -> bytes:
        """The whole (decoded) body; ``count`` is given each chunk, and may raise to stop."""
        ...

    async def aclose(self) -> None: ...


class _HttpxReply:
    """An ``httpx.Response`` streamed by an httpx client, as an :class:`AsyncReply`."""

    __slots__ = ("_response", "headers", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> AsyncIterable[bytes]:
        """Undecoded bytes when there is nothing to decode, straight from the transport's
        stream: httpx's ``aiter_raw`` around it (download counters, stream-state flags, the
        request attached to errors per chunk: nothing used here) costs CPU for nothing, and
        every transport raises httpx's exceptions from its own stream."""
        response = self._response
        if "content-encoding" in response.headers:
            return response.aiter_bytes()
        stream = response.stream
        if isinstance(stream, httpx.AsyncByteStream):
            return stream
        return response.aiter_raw()  # not an async stream: httpx's own error for it

    async def read(self, count: Callable[[bytes], object]) -> bytes:
        parts = []
        async for chunk in self.chunks():
            count(chunk)
            parts.append(chunk)
        return b"".join(parts)

    async def aclose(self) -> None:
        await self._response.aclose()


@contextlib.asynccontextmanager
async def _anyio_deadline(left: float) -> AsyncIterator[None]:
    with anyio.fail_after(left):
        yield


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


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop; None outside asyncio (under trio). Asked once per call: under
    Python 3.11 each ``asyncio.get_running_loop()`` makes a system call (``getpid``)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _traced_transport(client: httpx.Client | httpx.AsyncClient) -> bool:
    from pickllm.backends._transport import AiohttpTransport

    transport = getattr(client, "_transport", None)
    return isinstance(transport, httpx.HTTPTransport | httpx.AsyncHTTPTransport | AiohttpTransport)


@dataclass(frozen=True, slots=True)
class _AsyncPool:
    """One event loop's async client, what closes it with the loop (asyncio only), and, under
    asyncio, its aiohttp transport and the headers of a JSON request for
    :meth:`ClientPools.asend`."""

    client: httpx.AsyncClient
    closer: AsyncGenerator[None, None] | None
    direct: AiohttpTransport | None
    json_headers: CIMultiDict[str] | None


class ClientPools:
    """The clients of one backend (see the module docs). Thread-safe."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        timeout: httpx.Timeout,
        limits: httpx.Limits | None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise ArgumentTypeError(f"http_client must be an httpx.Client, got {http_client!r}")
        if async_http_client is not None and not isinstance(async_http_client, httpx.AsyncClient):
            raise ArgumentTypeError(
                f"async_http_client must be an httpx.AsyncClient, got {async_http_client!r}"
            )
        self._headers = dict(headers)
        self._timeout = timeout
        self._limits = limits if limits is not None else httpx.Limits()
        self._injected = http_client
        self._async_injected = async_http_client
        #: Whether calls on the sync / async client report trace events (see CallLimits.trace):
        #: httpx's own transports and ours do; another transport (httpx-aiohttp's, a mock)
        #: gives no way to tell our pool's queue from the server's time.
        self.traced_sync = http_client is None or _traced_transport(http_client)
        self.traced_async = async_http_client is None or _traced_transport(async_http_client)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclients: dict[object, _AsyncPool] = {}

    def sync(self) -> httpx.Client:
        if self._injected is not None:
            return self._injected
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    self._client = httpx.Client(
                        timeout=self._timeout, limits=self._limits, verify=_shared_ssl_context()
                    )
                client = self._client
        return client

    async def async_(self) -> httpx.AsyncClient:
        """This event loop's async client (or the injected one), with httpx's whole API."""
        if self._async_injected is not None:
            return self._async_injected
        return (await self._async_pool()).client

    def deadline_scope(
        self, left: float | None, loop: asyncio.AbstractEventLoop | None
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        """What cancels an async call ``left`` seconds from now, raising TimeoutError, in
        ``loop`` (:func:`running_loop`): nothing more on our own pools under asyncio, whose
        requests :meth:`asend` bounds by their ``deadline`` with aiohttp's own timer; else
        asyncio's timeout (a third of anyio's cost), or anyio's scope under trio."""
        if left is None:
            return _NO_SCOPE
        if loop is None:  # not asyncio (trio)
            return _anyio_deadline(max(left, 0))
        if self._async_injected is None:
            return _NO_SCOPE
        return asyncio.timeout(max(left, 0))

    def asend(
        self,
        url: str,
        payload: Any,
        *,
        timeouts: Mapping[str, float | None],
        trace: Trace,
        deadline: float | None,
        loop: asyncio.AbstractEventLoop | None,
    ) -> Awaitable[AsyncReply]:
        """POST ``payload`` as JSON on the pool of ``loop`` (:func:`running_loop`), with httpx's
        phase ``timeouts`` (``Timeout.as_dict()``); await the reply, its body unread (the caller
        closes it, within :meth:`deadline_scope`). What
        ``client.send(client.build_request(...), stream=True)`` does, and on an injected client
        or httpx's transport exactly that.

        On our aiohttp transport the request goes straight to it, built once here: our own
        clients set no auth, redirects, event hooks or cookies, and httpx's machinery that would
        find so (building the request, sending it through the client, its response object) costs
        more CPU per request than aiohttp's whole exchange. So a server's cookies are not kept,
        and httpx's INFO log line per request is not written; the body is decoded by aiohttp.
        Once the loop's pool exists, what is returned is the transport's own coroutine (one
        frame less for every resumption of the call).
        """
        if self._async_injected is None:
            pool = self._aclients.get(loop if loop is not None else _NO_LOOP)
            if pool is not None and pool.direct is not None:
                return self._send_direct(pool, url, payload, timeouts, trace, deadline)
        return self._asend(url, payload, timeouts, trace, deadline)

    @staticmethod
    def _send_direct(
        pool: _AsyncPool,
        url: str,
        payload: Any,
        timeouts: Mapping[str, float | None],
        trace: Trace,
        deadline: float | None,
    ) -> Awaitable[Reply]:
        assert pool.direct is not None
        assert pool.json_headers is not None
        return pool.direct.send(
            "POST",
            url,
            headers=pool.json_headers,
            body=_encode_json(payload),
            timeouts=timeouts,
            trace=trace,
            deadline=deadline,
            decompress=True,
        )

    async def _asend(
        self,
        url: str,
        payload: Any,
        timeouts: Mapping[str, float | None],
        trace: Trace,
        deadline: float | None,
    ) -> AsyncReply:
        client = self._async_injected
        if client is None:
            pool = await self._async_pool()
            if pool.direct is not None:
                return await self._send_direct(pool, url, payload, timeouts, trace, deadline)
            client = pool.client
        request = client.build_request(
            "POST",
            url,
            json=payload,
            headers=self._headers,
            timeout=httpx.Timeout(**timeouts),
            extensions={"trace": trace},
        )
        return _HttpxReply(await client.send(request, stream=True))

    async def _async_pool(self) -> _AsyncPool:
        loop = running_loop()
        key = loop if loop is not None else _NO_LOOP
        pool = self._aclients.get(key)  # a dict read needs no lock
        if pool is not None:
            return pool
        with self._lock:
            # Pools of loops that have ended were closed by their closer; forget them.
            for dead in [k for k in self._aclients if isinstance(k, asyncio.AbstractEventLoop)]:
                if dead.is_closed():
                    del self._aclients[dead]
            pool = self._aclients.get(key)
            fresh = pool is None
            if pool is None:
                pool = self._aclients[key] = self._new_async_pool(loop)
        if fresh and pool.closer is not None:
            await anext(pool.closer)  # the first step registers it with the loop's shutdown
        return pool

    def _new_async_pool(self, loop: asyncio.AbstractEventLoop | None) -> _AsyncPool:
        if loop is None:  # not asyncio: httpx's transport (anyio's, so trio's too)
            client = httpx.AsyncClient(
                headers=self._headers,
                timeout=self._timeout,
                limits=self._limits,
                verify=_shared_ssl_context(),
            )
            return _AsyncPool(client, None, None, None)
        from multidict import CIMultiDict

        from pickllm.backends._transport import AiohttpTransport

        direct = AiohttpTransport(limits=self._limits, ssl_context=_shared_ssl_context())
        client = httpx.AsyncClient(headers=self._headers, timeout=self._timeout, transport=direct)
        # The headers httpx would send with a JSON body: its defaults (User-Agent, Accept, ...),
        # ours, and the content type; aiohttp adds Host and Content-Length, and Accept-Encoding:
        # it decodes the body, and its own header names the encodings it can decode.
        headers = httpx.Headers(client.headers)
        headers["Content-Type"] = "application/json"
        if not any(name.lower() == "accept-encoding" for name in self._headers):
            del headers["Accept-Encoding"]
        json_headers = CIMultiDict(headers.multi_items())
        return _AsyncPool(client, _close_with_loop(client), direct, json_headers)

    @property
    def headers(self) -> dict[str, str]:
        """Sent with every request (per request, so that injected clients get them too)."""
        return self._headers

    def close(self) -> None:
        """Close the sync pool (not an injected client). A later call opens a new one."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the sync pool and this event loop's async pool (not injected clients)."""
        self.close()
        loop = running_loop()
        with self._lock:
            entry = self._aclients.pop(loop if loop is not None else _NO_LOOP, None)
        if entry is not None:
            if entry.closer is not None:
                await entry.closer.aclose()  # runs its finally: closes the client
            else:
                await entry.client.aclose()
