"""Sending a streamed answer to the client, within the request's deadline.

The deadline covers the whole response, the client's side included: a client that stops
reading makes each send wait (uvicorn's flow control), and once the deadline passes during a
send the stream is cut and the decision settled as "left" (its reservation released, no model
blamed: the upstream kept up, the client did not). When the deadline passes while waiting for
the upstream, the upstream is what was slow (an ``UpstreamError`` of kind "deadline").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import anyio
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from pickllm.gateway.proxy import DONE, Stream, UpstreamError

__all__ = ["Ended", "StreamResponse"]

logger = logging.getLogger("pickllm.gateway")

#: Called once when a stream ends: ("done" | "broken" | "left", the upstream's error if broken).
Ended = Callable[[str, UpstreamError | None], None]

#: The code of the error event that ends a stream cut short, by UpstreamError kind.
_STREAM_ERROR_CODES = {"deadline": "deadline_exceeded", "too_large": "response_too_large"}


class _SlowClientError(Exception):
    """The deadline passed while the client was not reading what was sent."""


class StreamResponse(Response):
    """Streams an upstream's events to the client while watching for the client leaving.

    ``ended`` is called exactly once, with "done", "broken" or "left", and before the client
    sees the end of the stream (``[DONE]`` is held back until then), so that whatever the
    client does next (feedback, a metrics scrape) finds the decision settled. On disconnect the
    stream is cancelled and the upstream connection closed, which cancels the upstream call."""

    def __init__(self, stream: Stream, headers: dict[str, str], ended: Ended) -> None:
        # Not Response.__init__: it would declare a Content-Length of 0.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        self.raw_headers.append((b"content-type", b"text/event-stream"))
        self.raw_headers.append((b"cache-control", b"no-cache"))
        self.stream = stream
        self.ended = ended
        self.settled = False

    def _settle(self, outcome: str, failure: UpstreamError | None) -> None:
        if not self.settled:
            self.settled = True
            self.ended(outcome, failure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        deadline = self.stream.limits.deadline

        async def timely(message: Message) -> None:
            if deadline is None:
                await send(message)
                return
            with anyio.move_on_at(deadline) as waited:
                await send(message)
            if waited.cancelled_caught:
                raise _SlowClientError

        try:
            await timely(
                {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
            )
            async with anyio.create_task_group() as group:
                group.start_soon(_watch_disconnect, receive, group.cancel_scope)
                try:
                    await self._forward(timely)
                except _SlowClientError:  # caught here, not out of the group (an ExceptionGroup)
                    self._cut()
                group.cancel_scope.cancel()
        except _SlowClientError:
            self._cut()
        except OSError:
            pass  # the client left
        finally:
            self.stream.close()
            self._settle("left", None)

    def _cut(self) -> None:
        logger.warning(
            "pickllm gateway: a client read its stream too slowly for the %s; cut off",
            self.stream.limits.deadline_name,
        )

    async def _forward(self, timely: Callable[[Message], Awaitable[None]]) -> None:
        """Send the stream's events, then its end (``[DONE]``, or an error event)."""
        tail = b""
        try:
            async for chunk in self.stream.events():
                if chunk == DONE:
                    tail = chunk
                    continue
                await timely({"type": "http.response.body", "body": chunk, "more_body": True})
            self.stream.release()
            self._settle("done", None)
        except UpstreamError as error:
            self._settle("broken", error)
            event = {
                "error": {
                    "message": str(error),
                    "type": "server_error",
                    "code": _STREAM_ERROR_CODES.get(error.kind, "upstream_stream_broken"),
                }
            }
            tail = b"data: " + json.dumps(event).encode() + b"\n\n"
        await timely({"type": "http.response.body", "body": tail, "more_body": False})


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
