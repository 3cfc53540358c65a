"""Which :class:`~pickllm.backends.errors.BackendError` a failure becomes: a table of transport
failures, and the error class of each HTTP status.

Backends never retry; they classify, so that the router can react to each kind: fall back, hold a
rate-limited model out, or, for congestion on our own side, not blame the model at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from pickllm.backends.errors import (
    BackendConnectionError,
    BackendError,
    BackendStatusError,
    BackendTimeoutError,
    ClientError,
    LocalCongestionError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
)

__all__ = ["TRANSPORT_FAILURES", "TransportFailure", "status_class", "transport_failure"]


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """How one kind of httpx failure is reported, before the response began and after it:
    the error class and what happened (``{url}`` is filled in)."""

    cause: type[httpx.HTTPError]
    before: type[BackendError]
    before_what: str
    after: type[BackendError]
    after_what: str


_Row = TransportFailure

#: First match wins, so subclasses come before their bases (PoolTimeout is a TimeoutException).
TRANSPORT_FAILURES = (
    _Row(
        httpx.PoolTimeout,
        LocalCongestionError,
        "no connection of the local pool came free in time (congestion on our side)",
        LocalCongestionError,
        "no connection of the local pool came free in time (congestion on our side)",
    ),
    _Row(
        httpx.TimeoutException,
        BackendTimeoutError,
        "timed out waiting for a response",
        BackendTimeoutError,
        "timed out waiting for the stream",
    ),
    _Row(
        httpx.ConnectError,
        BackendConnectionError,
        "could not connect to {url}",
        BackendConnectionError,
        "could not connect to {url}",
    ),
    _Row(
        httpx.ProxyError,
        BackendConnectionError,
        "could not connect to {url}",
        BackendConnectionError,
        "could not connect to {url}",
    ),
    _Row(
        httpx.NetworkError,
        BackendConnectionError,
        "connection lost before a response",
        MalformedResponseError,
        "response cut off before its end",
    ),
    _Row(
        httpx.RemoteProtocolError,
        BackendConnectionError,
        "connection lost before a response",
        MalformedResponseError,
        "response cut off before its end",
    ),
    _Row(httpx.HTTPError, BackendError, "request failed", BackendError, "request failed"),
)


def transport_failure(exc: httpx.HTTPError) -> TransportFailure:
    for row in TRANSPORT_FAILURES:
        if isinstance(exc, row.cause):
            return row
    raise AssertionError("httpx.HTTPError is the last row")  # pragma: no cover


def status_class(status: int | None) -> type[BackendStatusError]:
    """The error class of an HTTP status (or of an in-band error's status, None if unknown)."""
    if status == 429:
        return RateLimitError
    if status is not None and 400 <= status < 500:
        return ClientError
    return ServerError
