"""A hostile HTTP server on 127.0.0.1, written on raw sockets: each request is answered by a
script that may trickle bytes, never stop, nest JSON a million deep or lie about usage.

``script(send, request)`` gets the parsed JSON request and a ``send(bytes)`` that raises
``StoppedError`` once the test is over or the client has gone, so endless scripts end with the test.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Send = Callable[[bytes], None]
Script = Callable[[Send, dict[str, Any]], None]


class StoppedError(Exception):
    """The test ended or the client closed the connection."""


@dataclass
class HostileServer:
    url: str
    scripts: dict[str, Script]
    requests: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _read_request(conn: socket.socket) -> dict[str, Any] | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    request: dict[str, Any] = json.loads(body[:length])
    return request


def _serve(server: HostileServer, conn: socket.socket) -> None:
    def send(data: bytes) -> None:
        if server.stop.is_set():
            raise StoppedError
        try:
            conn.sendall(data)
        except OSError:
            raise StoppedError from None

    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:  # keep-alive: several requests may come on one connection
                request = _read_request(conn)
                if request is None:
                    return
                with server.lock:
                    server.requests.append(request)
                server.scripts[request["model"]](send, request)
        except (StoppedError, OSError):
            return


@contextmanager
def hostile_server(scripts: dict[str, Script]) -> Iterator[HostileServer]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    listener.settimeout(0.05)
    server = HostileServer(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", scripts)
    threads: list[threading.Thread] = []

    def accept() -> None:
        while not server.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            thread = threading.Thread(target=_serve, args=(server, conn), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield server
    finally:
        server.stop.set()
        acceptor.join()
        listener.close()
        for thread in threads:
            thread.join(5)


# ------------------------------------------------------------------ scripts


def headers(status: int = 200, content_type: str = "application/json", **extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def completion(text: str = "The answer is B.", usage: Any = (12, 5)) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
    }
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
    return json.dumps(body).encode()


def answer(body: bytes, status: int = 200, **extra: str) -> Script:
    def script(send: Send, request: dict[str, Any]) -> None:
        send(headers(status, Content_Length=str(len(body)), **extra) + body)

    return script


def good() -> Script:
    return answer(completion())
