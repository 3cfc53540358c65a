"""A real HTTP server on 127.0.0.1 that plays scripted responses, for the backend tests.

Each test queues the responses it wants (``server.queue(...)``) and then inspects what the server
received (``server.requests``). Responses are written by hand on the socket so that tests can send
exactly the bytes a provider sends, stall, or cut a stream off mid-way.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

Action = Callable[["_Handler"], None]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    client_port: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class LocalServer:
    """The scripted server; ``url`` is its root, ``requests`` what it received."""

    url: str
    requests: list[Received] = field(default_factory=list)
    actions: deque[Action] = field(default_factory=deque)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def queue(self, *actions: Action) -> None:
        self.actions.extend(actions)

    @property
    def last(self) -> Received:
        assert self.requests, "the server received no request"
        return self.requests[-1]

    # ------------------------------------------------------------ response builders

    @staticmethod
    def json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Action:
        return LocalServer.raw(
            json.dumps(body).encode(), status, "application/json", headers=headers
        )

    @staticmethod
    def raw(
        body: bytes,
        status: int = 200,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Action:
        def act(handler: _Handler) -> None:
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(body)
            handler.wfile.flush()

        return act

    @staticmethod
    def sse(
        blocks: Sequence[str | float],
        *,
        delay: float = 0.0,
        end: str = "chunked",
        headers: Mapping[str, str] | None = None,
    ) -> Action:
        """Stream ``blocks`` (raw event-stream text), one chunk each, ``delay`` s apart.

        A float among the blocks is a pause of that many seconds at that point.

        ``end``: "chunked" ends the chunked body properly; "cut" drops the connection in the
        middle of the chunked body (an incomplete message); "eof" sends no Content-Length and no
        chunking and closes the connection cleanly (a body delimited by the close); "hang" stops
        sending after the blocks and keeps the connection open until the client gives up.
        """

        def act(handler: _Handler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/event-stream")
            handler.send_header("Cache-Control", "no-cache")
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            chunked = end in ("chunked", "cut", "hang")
            if chunked:
                handler.send_header("Transfer-Encoding", "chunked")
            else:
                handler.send_header("Connection", "close")
                handler.close_connection = True
            handler.end_headers()
            handler.wfile.flush()
            for block in blocks:
                pause = block if isinstance(block, float) else delay
                if pause and handler.server_state.stop.wait(pause):
                    return
                if isinstance(block, float):
                    continue
                data = block.encode()
                if chunked:
                    data = f"{len(data):x}\r\n".encode() + data + b"\r\n"
                handler.wfile.write(data)
                handler.wfile.flush()
            if end == "chunked":
                handler.wfile.write(b"0\r\n\r\n")
                handler.wfile.flush()
            elif end == "cut":
                handler.close_connection = True
                handler.connection.shutdown(socket.SHUT_RDWR)
            elif end == "hang":
                handler.server_state.stop.wait(5.0)
                handler.close_connection = True

        return act

    @staticmethod
    def slow(seconds: float, then: Action) -> Action:
        """Wait ``seconds`` before answering (interrupted when the test ends)."""

        def act(handler: _Handler) -> None:
            if not handler.server_state.stop.wait(seconds):
                then(handler)

        return act

    @staticmethod
    def hang_up() -> Action:
        """Close the connection without sending anything."""

        def act(handler: _Handler) -> None:
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)

        return act


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections when many async calls connect at once.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be observed
    timeout = 10  # a keep-alive connection left open by a client does not outlive the test long
    server_state: LocalServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every response and swamp the latencies measured.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.server_state
        with state.lock:
            state.requests.append(
                Received(
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    client_port=self.client_address[1],
                )
            )
            action = state.actions.popleft() if state.actions else None
        if action is None:
            LocalServer.json({"error": {"message": "no scripted response left"}}, 599)(self)
            return
        action(self)

    def handle(self) -> None:
        # The client may give up (timeout) while a slow action is still writing.
        try:
            super().handle()
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def _server_state() -> Iterator[LocalServer]:
    """One scripted server for the whole session (starting and stopping one per test is slow)."""
    state = LocalServer(url="")
    handler = type("Handler", (_Handler,), {"server_state": state})
    httpd = _Server(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def server(_server_state: LocalServer) -> Iterator[LocalServer]:
    """The scripted server on 127.0.0.1, emptied for this test; stalled responses end with it."""
    state = _server_state
    with state.lock:
        state.requests.clear()
        state.actions.clear()
        state.stop = threading.Event()
    try:
        yield state
    finally:
        # Wakes any action still pausing, so that no response outlives its test.
        state.stop.set()


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port
