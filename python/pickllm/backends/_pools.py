"""Connection pools of one backend: one ``httpx.Client``, and one ``httpx.AsyncClient`` per event
loop (an AsyncClient's pooled connections belong to the loop that opened them, and one backend
may serve several loops: ``asyncio.run`` per script step, a loop per test, a loop per thread).

Clients are created on first use and reused so that calls share keep-alive connections. A client
the user injected (``http_client=`` / ``async_http_client=``) is used as given, for every loop,
and never closed here: its owner closes it, as with any httpx client passed to a library.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import threading
from collections.abc import AsyncGenerator, Mapping

import httpx

from pickllm.errors import ArgumentTypeError

__all__ = ["ClientPools"]

#: The key of the async client used outside asyncio (under trio, through anyio).
_NO_LOOP = object()


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


def _httpcore_transport(client: httpx.Client | httpx.AsyncClient) -> bool:
    transport = getattr(client, "_transport", None)
    return isinstance(transport, httpx.HTTPTransport | httpx.AsyncHTTPTransport)


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
        #: Whether calls on the sync / async client report httpcore's trace events (see
        #: CallLimits.trace): only httpx's own transports do; another transport (aiohttp's,
        #: a mock) gives no way to tell our pool's queue from the server's time.
        self.traced_sync = http_client is None or _httpcore_transport(http_client)
        self.traced_async = async_http_client is None or _httpcore_transport(async_http_client)
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._aclients: dict[object, tuple[httpx.AsyncClient, AsyncGenerator[None, None] | None]]
        self._aclients = {}

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
        if self._async_injected is not None:
            return self._async_injected
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
                    timeout=self._timeout, limits=self._limits, verify=_shared_ssl_context()
                )
                closer = _close_with_loop(client) if loop is not None else None
                self._aclients[key] = (client, closer)
            else:
                client = entry[0]
        if closer is not None:
            await anext(closer)  # the first step registers it with the loop's shutdown
        return client

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
        loop = _running_loop()
        with self._lock:
            entry = self._aclients.pop(loop if loop is not None else _NO_LOOP, None)
        if entry is not None:
            client, closer = entry
            if closer is not None:
                await closer.aclose()  # runs its finally: closes the client
            else:
                await client.aclose()
