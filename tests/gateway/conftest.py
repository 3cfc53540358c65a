"""Fixtures of the gateway tests: the local upstream and `pickllm serve`, both real processes,
stopped after use (see tests/gateway_servers.py)."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_servers import KEY, Process, Serve, running_upstream, start
from servers import free_port

# LiteLLM fetches its model price map from the internet at import unless told to use its copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(autouse=True)
def collect_garbage_after_each_test() -> Iterator[None]:
    """Collect cycles as each test ends: a socket left unclosed in one (an SDK client is a
    reference cycle) then fails that test, as an unraisable ResourceWarning, instead of
    whichever later test or the session's end the garbage collector happened to run in."""
    yield
    gc.collect()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The local upstream's base URL (…/v1)."""
    with running_upstream(tmp_path_factory.mktemp("upstream")) as url:
        yield url


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """Start `pickllm serve` with a config text; stopped after the test."""
    started: list[Process] = []

    def run(config: str, workers: int = 1, env: dict[str, str] | None = None) -> Process:
        path = tmp_path / f"pickllm-{len(started)}.toml"
        path.write_text(config)
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        process = start(
            [
                sys.executable,
                "-m",
                "pickllm",
                "serve",
                "--config",
                str(path),
                "--port",
                str(port),
                "--workers",
                str(workers),
            ],
            f"http://127.0.0.1:{port}/readyz",
            log,
            {"PICKLLM_TEST_KEY": KEY, **(env or {})},
        )
        handle = Process(f"http://127.0.0.1:{port}", process, log)
        started.append(handle)
        return handle

    yield run
    for handle in started:
        handle.stop()
