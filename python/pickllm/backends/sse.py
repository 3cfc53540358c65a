r"""A decoder for server-sent events (the ``text/event-stream`` format both providers stream in).

It follows the WHATWG HTML "event stream interpretation" rules: lines end at CRLF, LF or CR and
nothing else, ``data`` lines are joined with newlines, a single space after the colon is dropped,
lines starting with ``:`` are comments, unknown fields are ignored and a blank line dispatches the
event. An event without ``data`` is not dispatched, and neither is one left without its closing
blank line when the stream ends (``flush`` reports it).

Raw bytes go through :meth:`SSEDecoder.feed_bytes`, which splits lines itself: httpx's
``iter_lines`` follows ``str.splitlines`` and would also break lines at U+2028, U+2029 and U+0085,
characters that JSON may carry unescaped inside a string (a model's answer, for one).

>>> decoder = SSEDecoder()
>>> decoder.feed_bytes(b'event: ping\r\ndata: {"type": "ping"}\r\n\r\ndata: x')
[SSEEvent(event='ping', data='{"type": "ping"}', id=None)]
>>> decoder.flush()  # "data: x" never got its blank line
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["SSEDecoder", "SSEEvent"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched event: ``event`` defaults to "message" as the spec says."""

    event: str
    data: str
    id: str | None = None


class SSEDecoder:
    """Incremental decoder: ``feed_bytes`` raw chunks (or ``feed`` lines), get events back."""

    __slots__ = ("_buffer", "_data", "_event", "_id", "_pending", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._buffer = b""
        self._skip_lf = False  # the last chunk ended in CR: a LF opening the next one pairs it
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        # Whether any field line has arrived since the last dispatch, to tell a cut-off event
        # from a clean end at a blank line.
        self._pending = False

    def feed_bytes(self, chunk: bytes) -> list[SSEEvent]:
        """Process a chunk of the raw stream; return the events it completes."""
        if not chunk:
            return []  # and keep _skip_lf: the LF may still come
        if self._skip_lf and chunk[:1] == b"\n":
            chunk = chunk[1:]
        self._skip_lf = False
        buffer = self._buffer + chunk
        if not self._started:
            if len(buffer) < 3 and _BOM.startswith(buffer):
                self._buffer = buffer  # maybe the start of a byte order mark: wait for more
                return []
            self._started = True
            if buffer.startswith(_BOM):  # the spec drops one leading byte order mark
                buffer = buffer[3:]
        events: list[SSEEvent] = []
        start = 0
        for match in _LINE_END.finditer(buffer):
            # UTF-8 never uses bytes below 0x80 inside a multi-byte character, so splitting the
            # bytes before decoding cannot cut a character in two.
            line = buffer[start : match.start()].decode("utf-8", errors="replace")
            start = match.end()
            if match.group() == b"\r" and start == len(buffer):
                self._skip_lf = True
            event = self.feed(line)
            if event is not None:
                events.append(event)
        self._buffer = buffer[start:]
        return events

    def feed(self, line: str) -> SSEEvent | None:
        """Process one line; return the event that a blank line completes, else None."""
        # httpx's line splitter keeps no terminators, but a caller splitting on "\n" alone
        # would leave a "\r" behind.
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        self._pending = True
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def flush(self) -> bool:
        """At the end of the stream: True if an event was started but never completed."""
        pending = self._pending or bool(self._buffer.strip(_BOM))
        self._event, self._data, self._pending, self._buffer = "", [], False, b""
        return pending

    def _dispatch(self) -> SSEEvent | None:
        data, event = self._data, self._event
        self._event, self._data, self._pending = "", [], False
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data), id=self._id)
