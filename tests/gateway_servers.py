"""Processes of the gateway tests and benchmarks: the local upstream and `pickllm serve`.

Not a test module: tests/gateway/conftest.py builds fixtures from these helpers, and the gateway
benchmark starts the same processes. Each is a child process on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from servers import free_port

UPSTREAM = Path(__file__).parent / "gateway" / "upstream.py"
#: The key clients send; the config names it as env:PICKLLM_TEST_KEY.
KEY = "sk-gateway-test-key-0123456789"
#: Bound on a process's startup (a loaded 2-core CI machine is slow to import).
STARTUP_TIMEOUT_S = 60.0


class InProcessGateway:
    """The gateway app under uvicorn on a thread of this process named ``thread_name``, for
    tests that patch what the gateway calls (a fit, a Redis client) to order events."""

    def __init__(self, config: str, thread_name: str = "gateway-loop") -> None:
        import uvicorn

        from pickllm.gateway.app import create_app
        from pickllm.gateway.config import GatewayConfig
        from redis_servers import wait_for

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(GatewayConfig.from_toml(config))
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name=thread_name, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, timeout=STARTUP_TIMEOUT_S)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(60)
        assert not self.thread.is_alive()


@dataclass
class Process:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> str:
        """Stop the process (SIGTERM, then SIGKILL) and return what it printed."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text(errors="replace")


def start(
    args: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{args} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(ready_url, timeout=1.0).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise RuntimeError(f"{args} did not become ready:\n{log.read_text()}")
        time.sleep(0.05)


@contextmanager
def running_upstream(folder: Path) -> Iterator[str]:
    """The local upstream (tests/gateway/upstream.py) as a real process on a free port, its log
    in ``folder``; yields its base URL (…/v1) and stops it afterwards."""
    port = free_port()
    log = folder / "upstream.log"
    process = start(
        [sys.executable, str(UPSTREAM), str(port)], f"http://127.0.0.1:{port}/_stats", log
    )
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        Process("", process, log).stop()


def metric(gateway: Process, name: str, **labels: str) -> float:
    """The value of one sample of the gateway's GET /metrics (0 when absent)."""
    text = httpx.get(f"{gateway.url}/metrics").text
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def upstream_stats(upstream: str) -> dict[str, Any]:
    return dict(httpx.get(upstream.removesuffix("/v1") + "/_stats").json())


def upstream_last(upstream: str) -> dict[str, Any]:
    return dict(httpx.get(upstream.removesuffix("/v1") + "/_last").json())


def shared_budget_config(upstream: str, redis_url: str, total: float, shared: str = "") -> str:
    """Router capped over model good, its budget of ``total`` USD held in the Redis at
    ``redis_url`` (``shared``: further keys of that table, as ", key = value"). Every answer of
    the local upstream reports 5 completion tokens: at 1 USD per 1M output tokens, no input price
    and max_tokens = 5, a call's worst-case cost is its actual cost, 5e-6 USD."""
    return f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]

[models.good]
base_url = "{upstream}"
output_price = 1.0
max_tokens = 5

[routers.capped]
models = ["good"]
budget = {{ total = {total!r} }}
shared = {{ url = "{redis_url}", name = "capped"{shared} }}
"""


def base_config(upstream: str, extra: str = "") -> str:
    """Models good and bad (both answering), a failing one, and router auto over good/bad."""
    return f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]
metrics_contexts = 100

[models.good]
base_url = "{upstream}"
model_id = "good-model"
input_price = 1.0
output_price = 2.0

[models.bad]
base_url = "{upstream}"
input_price = 0.5
output_price = 0.5

[models.broken]
base_url = "{upstream}"
model_id = "fail-500"

[routers.auto]
models = ["good", "bad"]
reward = {{ accuracy = 1.0, cost = 0.0, latency = 0.0 }}
seed = 7
{extra}
[routers.auto.policy]
kind = "q_learning"
learning_rate = "sample_average"
epsilon = 0.1
epsilon_decay = 1.0
epsilon_min = 0.1
"""


Serve = Callable[..., Process]
