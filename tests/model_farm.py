"""A real OpenAI-compatible HTTP server on 127.0.0.1 whose models behave as scripted.

Each model name maps to a behaviour: answer a fixed text with reported usage, fail with a status
(and headers), answer garbage, or stall. The server counts the requests per model, so tests can
check which models a router really called.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Behaviour:
    """What a model does: ``status`` 200 answers ``text``; other statuses fail."""

    text: str = "The answer is B."
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # raw body instead of a chat completion
    delay: float = 0.0
    usage: tuple[int, int] | None = (12, 5)


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

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model = body["model"]
            with farm.lock:
                farm.calls[model] += 1
            b = farm.behaviours[model]
            time.sleep(b.delay)
            if b.body is not None:
                payload = b.body
            else:
                completion = {
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

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # tests open dozens of connections at once
    daemon_threads = True


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
