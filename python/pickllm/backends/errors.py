"""The errors a backend call raises, classified so that a router can react to each kind.

Every failure of a call that reached for the network is a :class:`BackendError` and carries:

- ``backend``: which backend failed (its class and base URL, never its key),
- ``model``: the model name the call asked for,
- ``latency``: seconds from sending the request to the failure, so that a router can feed the
  failure back as an observation with its real cost in time.

The subclasses say what went wrong; backends never retry, they only classify:

==========================  =====================================================================
:class:`BackendConnectionError`  no connection (refused, DNS, reset before any response)
:class:`BackendTimeoutError`     connect, read or write timeout, including mid-stream
:class:`DeadlineExceededError`   the call's overall deadline passed (a ``BackendTimeoutError``)
:class:`LocalCongestionError`    no connection of our own pool came free in time: not the model's
                                 failure (``blames_model`` is False)
:class:`RateLimitError`          HTTP 429 (or an in-stream rate-limit error), with ``retry_after``
:class:`ServerError`             HTTP 5xx (Anthropic's 529 "overloaded" included), or a server error
                                 event inside a stream
:class:`ClientError`             any other HTTP 4xx: bad request, bad key, unknown model, too long
:class:`MalformedResponseError`  not JSON, nested too deeply, missing or absurd fields, a stream
                                 cut off or broken
:class:`ResponseTooLargeError`   the body or stream passed ``max_response_bytes`` (a
                                 ``MalformedResponseError``)
==========================  =====================================================================

Invalid arguments (no messages, a negative temperature) are caught before any request and raise
:class:`InvalidRequestError`, which is a ``ValueError`` and not a ``BackendError``: trying another
model would not fix them.

>>> err = RateLimitError("rate limited", backend="OpenAICompatible(http://127.0.0.1:1/v1)",
...                      model="m", latency=0.25, status=429, retry_after=2.0)
>>> isinstance(err, BackendError), err.retry_after, err.latency
(True, 2.0, 0.25)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from pickllm.errors import PickLLMError

__all__ = [
    "BackendConnectionError",
    "BackendError",
    "BackendStatusError",
    "BackendTimeoutError",
    "ClientError",
    "DeadlineExceededError",
    "InvalidRequestError",
    "LocalCongestionError",
    "MalformedResponseError",
    "RateLimitError",
    "ResponseTooLargeError",
    "ServerError",
    "parse_retry_after",
    "retry_after_of",
]


def _rebuild(cls: type[BackendError], message: str, state: dict[str, Any]) -> BackendError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class BackendError(PickLLMError):
    """A call to a model's backend failed. See the module docs for the subclasses."""

    backend: str
    model: str
    latency: float
    #: Whether the failure is the model's (fed back as zero accuracy, counted by the breaker);
    #: False for congestion on our side, which says nothing about the model.
    blames_model: bool = True

    def __init__(self, message: str, *, backend: str, model: str, latency: float) -> None:
        super().__init__(f"{backend}, model {model!r}: {message} (after {latency:.3f} s)")
        self.backend = backend
        self.model = model
        self.latency = latency

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword-only constructor defeats Exception's default pickling (cls(*args)), and
        # errors do cross process boundaries (multiprocessing pools, task queues).
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))


class BackendConnectionError(BackendError, ConnectionError):
    """The connection could not be made or was lost before any response arrived."""


class BackendTimeoutError(BackendError, TimeoutError):
    """A connect, read, write or pool timeout expired (also mid-stream)."""


class DeadlineExceededError(BackendTimeoutError):
    """The call's overall deadline (``deadline=``, an absolute ``time.monotonic()``) passed
    before the whole answer arrived, however steadily the server was sending."""


class LocalCongestionError(BackendTimeoutError):
    """No connection of the backend's own pool came free in time (httpx's pool timeout): the
    congestion is on our side, so the model is not blamed (it was never called)."""

    blames_model = False


class BackendStatusError(BackendError):
    """The server answered with an error status (or an error event inside a stream).

    ``status`` is the HTTP status, or for an error event inside a stream whose HTTP status was 200
    the status that the event's type stands for (None when it names none). ``retry_after`` is the
    delay the server asked for in seconds (``Retry-After`` or ``retry-after-ms``), else None.
    ``detail`` is the server's error message (keys redacted, at most 500 characters).
    """

    status: int | None
    retry_after: float | None
    detail: str

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        model: str,
        latency: float,
        status: int | None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message, backend=backend, model=model, latency=latency)
        self.status = status
        self.retry_after = retry_after
        self.detail = detail


class RateLimitError(BackendStatusError):
    """HTTP 429 or a rate-limit error event: slow down, or go to another model."""


class ServerError(BackendStatusError):
    """HTTP 5xx or a server-side error event: the provider failed or is overloaded."""


class ClientError(BackendStatusError):
    """HTTP 4xx other than 429: the request was refused (bad key, unknown model, too long...)."""


class MalformedResponseError(BackendError):
    """The response could not be understood: not JSON, missing fields, a broken or cut stream."""


class ResponseTooLargeError(MalformedResponseError):
    """The response body or stream grew past ``max_response_bytes``; reading stopped there."""


class InvalidRequestError(PickLLMError, ValueError):
    """The arguments of a call are invalid; raised before anything is sent."""


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header value, or None if absent or unparsable.

    Both forms of RFC 9110 are accepted: delay-seconds and an HTTP-date (converted to seconds from
    ``now``, clamped at 0 for a date in the past). Negative, NaN or infinite delays give None.

    >>> parse_retry_after("120")
    120.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT",
    ...                   now=datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC))
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        # float() also accepts "nan", "inf" and "1e400"; none of them is a usable delay.
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse as naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from a response's headers (case-insensitive, as httpx's and aiohttp's
    are): OpenAI's finer ``retry-after-ms`` when it is valid, else :func:`parse_retry_after`
    of ``Retry-After``. The backends and the gateway both read a 429 through this.

    >>> retry_after_of({"retry-after-ms": "1500", "retry-after": "2"})
    1.5
    >>> retry_after_of({"retry-after-ms": "soon", "retry-after": "2"})
    2.0
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            value = float(milliseconds)
        except ValueError:
            value = -1.0
        if 0 <= value < float("inf"):
            return value / 1000.0
    return parse_retry_after(headers.get("retry-after"))
