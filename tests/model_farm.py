"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose models behave as scripted.

Each model name maps to a behaviour: answer a fixed text with reported usage, fail with a status
(and headers), answer garbage, or stall. The server counts the requests per model, so tests can
check which models a router really called. A request with ``"stream": true`` to a model that
answers gets its answer as server-sent events (OpenAI's chunk format, usage in the last chunk).
A body may quote the request's Authorization header (``echo_auth``), as some servers do in 401s.
A prompt starting with :data:`DOOMED` fails with a 500 on every model, so that a test can make a
query fail everywhere, deterministically.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

#: A last message starting with this fails on every model (HTTP 500).
DOOMED = "DOOMED:"


@dataclass(frozen=True)
class Behaviour:
    """What a model does: ``status`` 200 answers ``text``; other statuses fail."""

    text: str = "The answer is B."
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # raw body instead of a chat completion
    delay: float = 0.0
    usage: tuple[int, int] | None = (12, 5)
    #: Replace ``{authorization}`` in ``body`` with the request's Authorization header.
    echo_auth: bool = False


def answer(text: str, usage: tuple[int, int] | None = (12, 5)) -> Behaviour:
    return Behaviour(text=text, usage=usage)


def fail(status: int, *headers: tuple[str, str]) -> Behaviour:
    return Behaviour(status=status, headers=headers, body=b'{"error": {"message": "scripted"}}')


@dataclass
class ModelFarm:
    url: str
    behaviours: dict[str, Behaviour]
    calls: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(farm: ModelFarm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes; without this, Nagle's algorithm holds the
            # body until the client's delayed ACK, adding 40 ms to every call.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model = body["model"]
            with farm.lock:
                farm.calls[model] += 1
            b = farm.behaviours[model]
            if str(body["messages"][-1].get("content", "")).startswith(DOOMED):
                b = fail(500)
            time.sleep(b.delay)
            try:
                if b.body is None and b.status == 200 and body.get("stream"):
                    self._stream(model, b)
                else:
                    self._answer(model, b)
            except ConnectionError:
                pass  # the client gave up (a timeout) while this model stalled

        def _answer(self, model: str, b: Behaviour) -> None:
            if b.body is not None:
                payload = b.body
                if b.echo_auth:
                    auth = self.headers.get("Authorization", "")
                    payload = payload.replace(b"{authorization}", auth.encode())
            else:
                completion: dict[str, object] = {
                    "id": f"chatcmpl-{farm.calls[model]}",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": b.text},
                            "finish_reason": "stop",
                        }
                    ],
                }
                if b.usage is not None:
                    completion["usage"] = {
                        "prompt_tokens": b.usage[0],
                        "completion_tokens": b.usage[1],
                        "total_tokens": sum(b.usage),
                    }
                payload = json.dumps(completion).encode()
            self.send_response(b.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in b.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _stream(self, model: str, b: Behaviour) -> None:
            def chunk(delta: dict[str, str], finish: str | None) -> dict[str, object]:
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
                return {"object": "chat.completion.chunk", "model": model, "choices": [choice]}

            events: list[object] = [
                chunk({"role": "assistant", "content": ""}, None),
                *(chunk({"content": b.text[i : i + 4]}, None) for i in range(0, len(b.text), 4)),
                chunk({}, "stop"),
            ]
            if b.usage is not None:
                usage = {"prompt_tokens": b.usage[0], "completion_tokens": b.usage[1]}
                last: dict[str, object] = {
                    "object": "chat.completion.chunk",
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
                events.append(last)
            payload = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
            payload += b"data: [DONE]\n\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # tests open dozens of connections at once
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that closed its connection (a timeout, a closed pool) is no server error."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def model_farm(behaviours: dict[str, Behaviour]) -> Iterator[ModelFarm]:
    """Serve ``behaviours`` on a free port of 127.0.0.1 for the duration of the block."""
    farm = ModelFarm("", dict(behaviours))
    server = _Server(("127.0.0.1", 0), _handler(farm))
    farm.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield farm
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
