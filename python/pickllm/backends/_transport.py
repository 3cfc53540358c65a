"""An httpx transport on an ``aiohttp.ClientSession``: the async pools' way to the network.

httpx's own async pool spends milliseconds of CPU per request assigning connections once a
hundred tasks share it (encode/httpx#3215); aiohttp's connector does not. Requests and responses
stay httpx objects (the clients, injection, timeouts and error classes the backends know), and
only the bytes travel through aiohttp. One transport belongs to one asyncio event loop.

What httpx's transport gives and this one keeps:

- **the pool bound and its wait**: ``httpx.Limits.max_connections`` is a semaphore of requests in
  flight (under HTTP/1.1, connections in use); waiting for it longer than the ``pool`` timeout
  raises :class:`httpx.PoolTimeout`. Taking a slot is reported to the request's ``trace``
  extension (event ``connection.acquired``), so a deadline that passes in the queue is told apart
  from one that passes at the server (``CallLimits.acquired``).
- **timeouts**: ``connect`` bounds opening a connection, ``read`` the wait for each chunk.
  aiohttp has no write timeout: a request body is small, and the call's deadline bounds it.
- **errors**, each aiohttp failure as the httpx exception httpx's transport raises for it
  (see :func:`_httpx_error`); decoding (``Content-Encoding``) is left to httpx, as with httpx's
  transport.
- **keep-alive**: ``keepalive_expiry`` is the connector's keep-alive timeout;
  ``max_keepalive_connections`` has no aiohttp equivalent (idle connections are at most
  ``max_connections``).
- **proxies**: ``HTTP_PROXY`` / ``HTTPS_PROXY`` / ``ALL_PROXY`` are read when the transport is
  made, as httpx reads them when a client is made (``NO_PROXY`` is read per request, by
  ``urllib.request.proxy_bypass``); ``.netrc`` is never read.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp
import httpx
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

__all__ = ["AiohttpTransport"]

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


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp as it arrives; closing it frees the pool slot."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: httpx.Request | None,
        slot: asyncio.Semaphore,
    ) -> None:
        self._response = response
        self._request = request
        self._slot: asyncio.Semaphore | None = slot
        self._ended = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while chunk := await content.readany():
                yield chunk
        except _NETWORK_ERRORS as exc:
            raise _httpx_error(exc, self._request, responded=True) from exc
        self._ended = True

    async def aclose(self) -> None:
        slot, self._slot = self._slot, None
        if slot is None:
            return
        if self._ended:
            self._response.release()  # read to its end: the connection can serve again
        else:
            self._response.close()  # abandoned (error, cap, deadline, cancel): never reused
        slot.release()


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
        response = await self.send(
            request.method,
            str(request.url),
            headers=request.headers.multi_items(),
            body=await request.aread(),
            timeouts=request.extensions.get("timeout", {}),
            trace=request.extensions.get("trace"),
            request=request,
        )
        response.request = request
        return response

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        timeouts: Mapping[str, float | None],
        trace: Trace | None = None,
        request: httpx.Request | None = None,
    ) -> httpx.Response:
        """One request, sent as given (``headers`` complete but for Host and Content-Length);
        the response's body is unread, and closing it frees the slot. ``timeouts`` and
        ``trace`` are httpx's request extensions; ``request``, when the caller has one, is
        named by the errors raised."""
        slot = self._slots
        if slot.locked():
            try:
                async with asyncio.timeout(timeouts.get("pool")):
                    await slot.acquire()
            except TimeoutError:
                raise httpx.PoolTimeout(
                    "no connection of the pool came free in time", request=request
                ) from None
        else:
            await slot.acquire()  # free: returns at once
        try:
            if trace is not None:
                await trace(ACQUIRED, {"request": request})
            try:
                response = await self._session.request(
                    method,
                    url,
                    headers=headers,
                    data=body or None,
                    allow_redirects=False,  # httpx's client follows redirects if asked
                    proxy=self._proxy(url),
                    timeout=aiohttp.ClientTimeout(
                        total=None,
                        connect=timeouts.get("connect"),
                        sock_connect=timeouts.get("connect"),
                        sock_read=timeouts.get("read"),
                    ),
                )
            except _NETWORK_ERRORS as exc:
                raise _httpx_error(exc, request, responded=False) from exc
        except BaseException:
            slot.release()
            raise
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request, slot),
            extensions=_extensions(response),
        )

    async def aclose(self) -> None:
        await self._session.close()


def _extensions(response: aiohttp.ClientResponse) -> dict[str, Any]:
    version = response.version
    http_version = b"HTTP/1.1" if version is None else f"HTTP/{version[0]}.{version[1]}".encode()
    return {"http_version": http_version, "reason_phrase": (response.reason or "").encode()}
