"""Bounds on what one client connection may hold, before it is authenticated: uvicorn's h11
protocol with a deadline on request headers and a cap on open connections per worker.

A client that opens connections and sends its headers a byte at a time ("slowloris") holds a
file descriptor each; enough of them and the worker cannot open the sockets its upstream calls
need. So every connection has ``header_timeout`` seconds to deliver a request's headers (the
first, and each next one on a kept-alive connection), else it is closed, and a worker holding
``max_connections`` answers each further connection's request with a 503 of its own
(OpenAI-style, ``gateway_overloaded``) and closes it. The body has ``body_timeout`` (see
:func:`pickllm.gateway.validation.read_json`).

``pickllm serve`` passes the limits in the environment (:data:`LIMITS_ENV`), as it passes the
config file, so that every worker process reads the same ones.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from pickllm.gateway.errors import APIError

__all__ = ["LIMITS_ENV", "GuardedH11Protocol", "GuardedHttpToolsProtocol", "protocol"]

#: "HEADER_TIMEOUT MAX_CONNECTIONS", set by ``pickllm serve`` for its workers.
LIMITS_ENV = "PICKLLM_GATEWAY_CONNECTION_LIMITS"
_DEFAULT_LIMITS = "10 500"

_OVERLOADED = json.dumps(
    APIError(
        "the gateway holds too many connections; retry later",
        status=503,
        type="server_error",
        code="gateway_overloaded",
    ).body()
).encode()


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The app of a connection beyond max_connections: a 503 of the gateway's own, then close."""
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(_OVERLOADED)).encode()),
        (b"retry-after", b"1"),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": _OVERLOADED})


class _Guard:
    """A connection's header deadline: armed while no request is being served."""

    __slots__ = ("_timer", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._timer: asyncio.TimerHandle | None = None

    def arm(self, loop: asyncio.AbstractEventLoop, transport: asyncio.BaseTransport) -> None:
        self.disarm()
        # No complete request headers in time: close, freeing the descriptor.
        self._timer = loop.call_later(self.timeout, transport.close)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _limits() -> tuple[float, int]:
    timeout, most = os.environ.get(LIMITS_ENV, _DEFAULT_LIMITS).split()
    return float(timeout), int(most)


class _Guarded:
    """What both guarded protocols add to uvicorn's: the cap, checked as a connection opens, and
    the header deadline, armed as it opens and whenever it falls idle, disarmed as it closes.
    Each protocol disarms where its parser reports a request's headers complete."""

    # The parts of uvicorn's protocols this mixin uses (it comes first in the bases).
    connections: set[Any]
    app: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)  # type: ignore[call-arg]
        timeout, self.max_connections = _limits()
        self.guard = _Guard(timeout)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.max_connections:
            self.app = _overloaded
        self.guard.arm(self.loop, transport)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]  # may start a pipelined request
        idle = self.cycle is None or self.cycle.response_complete
        if idle and not self.transport.is_closing():
            self.guard.arm(self.loop, self.transport)  # for the next request's headers

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.disarm()
        super().connection_lost(exc)  # type: ignore[misc]


class GuardedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol, with a header deadline and a connection cap (module docs)."""

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self.guard.disarm()  # a request's headers arrived


class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
    """uvicorn's httptools protocol (the faster parser, when installed), guarded alike."""

    def on_headers_complete(self) -> None:
        self.guard.disarm()
        super().on_headers_complete()


def protocol() -> str:
    """The import path of the guarded protocol ``pickllm serve`` runs: httptools' when it is
    installed (the ``server`` extra installs it), else h11's."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "pickllm.gateway.connections:GuardedH11Protocol"
    return "pickllm.gateway.connections:GuardedHttpToolsProtocol"
