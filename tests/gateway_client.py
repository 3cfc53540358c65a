"""How the gateway tests talk to a `pickllm serve` process: the openai SDK as a client, and
waiting for what the gateway does in the background."""

from __future__ import annotations

import time
from collections.abc import Callable

import openai
import pytest

from gateway_servers import KEY, Process

#: Bound on waiting for something the gateway does in the background (a deadline passing, a
#: disconnect noticed); the condition is what is asserted, never the time it took.
WAIT_S = 30.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def client(gateway: Process, key: str = KEY) -> openai.OpenAI:
    """An SDK client of the gateway, without retries; a request left unanswered fails the test
    within a minute (not the SDK's ten). Use it in ``with``: an unclosed one would leave its
    socket to the garbage collector, which may find it in any later test (an unraisable
    ResourceWarning: the client is a reference cycle, so the socket can be finalized before the
    client)."""
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=60)
