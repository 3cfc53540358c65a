"""An httpx transport on an ``aiohttp.ClientSession``: the async pools' way to the network.

httpx's own async pool spends milliseconds of CPU per request assigning connections once a
hundred tasks share it (encode/httpx#3215); aiohttp's connector does not. Behind an httpx
client, requests and responses stay httpx objects (the clients, timeouts and error classes
httpx users know); the backends' own calls skip them and get a :class:`Reply` straight from
:meth:`AiohttpTransport.send`. Either way errors are httpx's. One transport belongs to one
asyncio event loop.

What httpx's transport gives and this one keeps:

- **the pool bound and its wait**: ``httpx.Limits.max_connections`` is a semaphore of requests in
  flight (under HTTP/1.1, connections in use); waiting for it longer than the ``pool`` timeout
  raises :class:`httpx.PoolTimeout`. Taking a slot is reported to the request's ``trace``
  extension (event ``connection.acquired``), so a deadline that passes in the queue is told apart
  from one that passes at the server (``CallLimits.acquired``).
- **timeouts**: ``connect`` bounds opening a connection, ``read`` the wait for each chunk.
  aiohttp has no write timeout: a request body is small, and the call's deadline bounds it
  (aiohttp's ``total`` timer, when the caller gives :meth:`AiohttpTransport.send` one).
- **errors**, each aiohttp failure as the httpx exception httpx's transport raises for it
  (see :func:`_httpx_error`).
- **decoding** (``Content-Encoding``): behind an httpx client it is left to httpx, as with
  httpx's transport; the backends' own calls ask aiohttp to decode (``send(decompress=True)``).
- **keep-alive**: ``keepalive_expiry`` is the connector's keep-alive timeout;
  ``max_keepalive_connections`` has no aiohttp equivalent (idle connections are at most
  ``max_connections``).
- **proxies**: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` are read when the transport is
  made, as httpx reads them when a client is made (``NO_PROXY`` is read per request, by
  ``urllib.request.proxy_bypass``); ``.netrc`` is never read.
"""

from __future__ import annotations

import asyncio
import functools
import math
import ssl
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

__all__ = ["AiohttpTransport", "Reply"]

#: httpx's ``trace`` request extension, as awaited by async transports.
Trace = Callable[[str, dict[str, Any]], Awaitable[None]]

#: The event reported to a request's ``trace`` extension once it holds a slot of the pool.
ACQUIRED = "connection.acquired"


#: What aiohttp raises for the network's and the server's failures (anything else is a bug).
_NETWORK_ERRORS = (aiohttp.ClientError, HttpProcessingError, OSError)


def _httpx_error(
    exc: Exception, request: httpx.Request | None, *, responded: bool
) -> httpx.TransportError:
    """The httpx exception httpx's own transport raises for the failure ``exc``.

    ``responded``: the response head arrived, so a timeout is a read timeout and a lost
    connection cuts the body off.
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return httpx.ProxyError(message, request=request)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ServerTimeoutError):  # SocketTimeoutError: sock_read
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(
            "server disconnected before the response ended"
            if responded
            else "server disconnected without sending a response",
            request=request,
        )
    if isinstance(
        exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError | HttpProcessingError
    ):
        # A body cut off, or a head or chunk that is not HTTP.
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ServerConnectionError | OSError):
        return httpx.ReadError(message, request=request)  # reset by the peer, and the like
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message, request=request)
    return httpx.TransportError(message, request=request)


class Reply:
    """A response whose body is still to be read, as :meth:`AiohttpTransport.send` returns it.

    The backends' async calls use it as they would an ``httpx.Response`` (``status_code``,
    case-insensitive ``headers``), without building one: an ``httpx.Response``, its headers and
    its closing cost a tenth of a call's CPU under concurrency. Reading raises httpx's
    exceptions, as httpx's own transport does; closing frees the reply's slot of the pool, and
    returns its connection to the pool when the body was read to its end.
    """

    __slots__ = ("_ended", "_request", "_response", "_slot", "headers", "status_code")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request | None,
        slot: asyncio.Semaphore,
    ) -> None:
        self.status_code: int = response.status
        self.headers: Mapping[str, str] = response.headers
        self._response = response
        self._request = request
        self._slot: asyncio.Semaphore | None = slot
        self._ended = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body's chunks as they arrive."""
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except _NETWORK_ERRORS as exc:
            if _deadline(exc):
                raise
            raise _httpx_error(exc, self._request, responded=True) from exc
        self._ended = True

    async def read(self, count: Callable[[bytes], object]) -> bytes:
        """The whole body; ``count`` is given each chunk as it arrives, and may raise to stop.
        (What ``chunks`` gives, without an async generator's set-up and finalization.)"""
        content = self._response.content
        parts = []
        try:
            while chunk := await content.readany():
                count(chunk)
                parts.append(chunk)
                if content.at_eof():  # whole: no call for the empty chunk that says so
                    break
        except _NETWORK_ERRORS as exc:
            if _deadline(exc):
                raise
            raise _httpx_error(exc, self._request, responded=True) from exc
        self._ended = True
        return b"".join(parts)  # one chunk (the usual answer) is returned as it is, uncopied

    async def aclose(self) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return
        if self._ended:
            self._response.release()  # read to its end: the connection can serve again
        else:
            self._response.close()  # abandoned (error, cap, deadline, cancel): never reused
        slot.release()


def _deadline(exc: Exception) -> bool:
    """Whether ``exc`` is aiohttp's ``total`` timeout firing (a plain TimeoutError, which is an
    OSError, where its phase timeouts are ClientErrors): the call's deadline, for the caller."""
    return isinstance(exc, TimeoutError) and not isinstance(exc, aiohttp.ClientError)


class _Body(httpx.AsyncByteStream):
    """A reply's body as an httpx stream, for the httpx client on this transport."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._reply.chunks():
            yield chunk

    async def aclose(self) -> None:
        await self._reply.aclose()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(...))``: see the module docs. Make it in
    the event loop that will use it; ``aclose`` closes its session."""

    def __init__(self, *, limits: httpx.Limits, ssl_context: ssl.SSLContext) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,  # the bound is our semaphore, so that its wait is known and timed
            limit_per_host=0,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=ssl_context,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,  # httpx decodes, as it does for its own transport
            cookie_jar=aiohttp.DummyCookieJar(),  # cookies are the httpx client's business
            trust_env=False,  # proxies below; no .netrc
        )
        self._slots = asyncio.Semaphore(limits.max_connections or 2**31)
        self._proxies = urllib.request.getproxies_environment()

    def _proxy(self, url: str) -> str | None:
        if not self._proxies:
            return None
        parsed = URL(url)
        if urllib.request.proxy_bypass(parsed.host or ""):
            return None
        return self._proxies.get(parsed.scheme) or self._proxies.get("all")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        reply = await self.send(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            body=await request.aread(),
            timeouts=request.extensions.get("timeout", {}),
            trace=request.extensions.get("trace"),
            request=request,
        )
        return httpx.Response(
            reply.status_code,
            headers=reply._response.raw_headers,
            stream=_Body(reply),
            extensions=_extensions(reply._response),
            request=request,
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]],
        body: bytes,
        timeouts: Mapping[str, float | None],
        trace: Trace | None = None,
        request: httpx.Request | None = None,
        deadline: float | None = None,
        decompress: bool = False,
    ) -> Reply:
        """One request, sent as given (``headers`` complete but for Host and Content-Length;
        aiohttp copies a ``CIMultiDict`` faster than it converts pairs);
        the reply's body is unread. ``timeouts`` and ``trace`` are httpx's request extensions;
        ``request``, when the caller has one, is named by the errors raised.

        ``deadline`` (a ``time.monotonic()``) bounds the whole exchange, body included, with
        aiohttp's own ``total`` timer (a request pays for that timer whether or not it is set,
        so an enclosing ``asyncio.timeout`` would cost a second one); when it passes, a plain
        ``TimeoutError`` is raised, as by a cancel scope, and a request still waiting for a
        slot of the pool has not left it (no ``trace`` event). ``decompress``: decode the body
        as aiohttp can (send no Accept-Encoding then: aiohttp's own names what it decodes);
        otherwise the raw bytes, for httpx to decode.
        """
        slot = self._slots
        if slot.locked():
            wait = timeouts.get("pool")
            if deadline is not None:  # the total timer starts with the request: not yet
                left = deadline - time.monotonic()
                wait = left if wait is None else min(wait, left)
            try:
                async with asyncio.timeout(wait):
                    await slot.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(
                    "no connection of the pool came free in time", request=request
                ) from None
        else:
            await slot.acquire()  # free: returns at once
        try:
            total = None
            if deadline is not None:
                total = deadline - time.monotonic()
                if total <= 0:  # aiohttp reads a total <= 0 as no timeout at all
                    raise TimeoutError("the deadline passed in the local pool's queue")
            if trace is not None:
                await trace(ACQUIRED, {"request": request})
            try:
                response = await self._session.request(
                    method,
                    _url(url),
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,  # httpx's client follows redirects if asked
                    proxy=self._proxy(url),
                    auto_decompress=decompress,
                    timeout=aiohttp.ClientTimeout(
                        total=total,
                        connect=timeouts.get("connect"),
                        sock_connect=timeouts.get("connect"),
                        sock_read=timeouts.get("read"),
                        ceil_threshold=math.inf,  # at the deadline, not the next second
                    ),
                )
            except _NETWORK_ERRORS as exc:
                if _deadline(exc):
                    raise
                raise _httpx_error(exc, request, responded=False) from exc
        except BaseException:
            slot.release()
            raise
        return Reply(response, request, slot)

    async def aclose(self) -> None:
        await self._session.close()


@functools.lru_cache(maxsize=256)
def _url(url: str) -> URL:
    # Cached: a backend posts to one URL, which aiohttp would parse again for every request.
    return URL(url)


def _extensions(response: aiohttp.ClientResponse) -> dict[str, Any]:
    version = response.version
    return {
        "http_version": _http_version(None if version is None else tuple(version)),
        "reason_phrase": _reason_phrase(response.reason or ""),
    }


# Cached: a server answers with the same few versions and reasons (the bytes are immutable).
@functools.lru_cache(maxsize=8)
def _http_version(version: tuple[int, ...] | None) -> bytes:
    return b"HTTP/1.1" if version is None else f"HTTP/{version[0]}.{version[1]}".encode()


@functools.lru_cache(maxsize=64)
def _reason_phrase(reason: str) -> bytes:
    return reason.encode()
