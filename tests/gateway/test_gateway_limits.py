"""The gateway's limits against hostile upstreams: real sockets on 127.0.0.1
(tests/hostile_server.py) in front of `pickllm serve` as a subprocess, driven by the real
openai SDK.

Each hostile server never finishes its answer (it drips, or sends forever), so a request that
ends at all ended by the gateway's deadline or size cap; no test measures time. Each failure is
the model's, fed back exactly once: one failure of its kind, one zero reward.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest

from gateway_servers import KEY, Process, Serve, metric
from hostile_server import HostileServer, Send, hostile_server
from hostile_server import headers as http_headers

#: Seconds between the bytes of a dripping server (any pace works: it never finishes).
DRIP_S = 0.05
#: Bytes sent per write by the endless servers.
CHUNK = b"x" * 65536
#: The size cap of these tests: well under what the endless servers send (forever).
CAP = 100_000


def drip(send: Send, request: dict[str, Any]) -> None:
    """A 200 promising a long JSON body and sending it one byte at a time, never done."""
    send(http_headers(Content_Length=str(10**9)))
    while True:
        send(b" ")
        time.sleep(DRIP_S)


def endless_body(send: Send, request: dict[str, Any]) -> None:
    """A 200 whose JSON body never ends."""
    send(http_headers(Content_Length=str(10**15)) + b'{"choices": [], "padding": "')
    while True:
        send(CHUNK)


def _event(text: str) -> bytes:
    chunk = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def endless_stream(send: Send, request: dict[str, Any]) -> None:
    """An SSE stream of events that never ends."""
    send(http_headers(content_type="text/event-stream", Connection="close"))
    event = _event("x" * 1000)
    while True:
        send(event)


def dripping_stream(send: Send, request: dict[str, Any]) -> None:
    """An SSE stream whose events keep coming, slowly, forever."""
    send(http_headers(content_type="text/event-stream", Connection="close"))
    while True:
        send(_event("x"))
        time.sleep(DRIP_S)


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    scripts = {
        "drip": drip,
        "endless-body": endless_body,
        "endless-stream": endless_stream,
        "dripping-stream": dripping_stream,
    }
    with hostile_server(scripts) as server:
        yield server


def config(hostile: str, good: str, router: str) -> str:
    models = "".join(
        f'[models.{name}]\nbase_url = "{hostile}"\nmodel_id = "{name}"\n'
        for name in ("drip", "endless-body", "endless-stream", "dripping-stream")
    )
    return f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]
{models}
[models.good]
base_url = "{good}"
model_id = "good-model"

[routers.r]
breaker = false
{router}
"""


def ask(gateway: Process, stream: bool = False) -> Any:
    messages: Any = [{"role": "user", "content": "hi"}]
    # The client's own timeout only bounds a broken gateway: the hostile servers never finish.
    # Closed here: unclosed, its socket is left to the garbage collector (see test_gateway_serve).
    with openai.OpenAI(
        base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=120
    ) as openai_client:
        chat = openai_client.chat.completions
        if stream:
            return list(chat.create(model="r", messages=messages, stream=True))
        return chat.create(model="r", messages=messages)


@contextmanager
def fails_once(gateway: Process, model: str, kind: str) -> Iterator[None]:
    """The block makes ``model`` fail once with ``kind``: counted once, fed back once."""
    yield
    assert metric(gateway, "pickllm_upstream_failures_total", model=model, kind=kind) == 1
    assert metric(gateway, "pickllm_upstream_failures_total", model=model) == 1
    assert metric(gateway, "pickllm_reward_count", router="r", model=model) == 1
    assert metric(gateway, "pickllm_pending_feedback", router="r") == 0


def test_request_deadline_ends_a_dripping_answer(
    serve: Serve, hostile: HostileServer, upstream: str
) -> None:
    gateway = serve(config(hostile.url, upstream, 'models = ["drip"]\ndeadline = 1.0'))
    with fails_once(gateway, "drip", "deadline"), pytest.raises(openai.APIStatusError) as raised:
        ask(gateway)
    assert raised.value.status_code == 504
    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "deadline_exceeded"
    assert "deadline of 1 s passed after 1 attempt(s)" in error["message"]
    assert "drip: no complete answer within the request deadline of 1 s" in error["message"]


def test_request_deadline_ends_a_dripping_stream(
    serve: Serve, hostile: HostileServer, upstream: str
) -> None:
    gateway = serve(config(hostile.url, upstream, 'models = ["dripping-stream"]\ndeadline = 1.0'))
    with (
        fails_once(gateway, "dripping-stream", "deadline"),
        pytest.raises(openai.APIError, match="within the request deadline of 1 s"),
    ):
        ask(gateway, stream=True)


def test_attempt_deadline_falls_back_to_the_next_model(
    serve: Serve, hostile: HostileServer, upstream: str
) -> None:
    """Router over [drip, good], each attempt held to 0.5 s: every request is answered by
    good; each time the learner picked drip first, that attempt ended at its deadline and was
    fed back as drip's failure."""
    gateway = serve(
        config(
            hostile.url,
            upstream,
            'models = ["drip", "good"]\nseed = 3\ndeadline = 60.0\nattempt_deadline = 0.5',
        )
    )
    for _ in range(4):
        assert ask(gateway).model == "good"
    failed = metric(gateway, "pickllm_upstream_failures_total", model="drip", kind="deadline")
    picked = metric(gateway, "pickllm_decisions_total", router="r", model="drip")
    assert failed == picked == metric(gateway, "pickllm_reward_count", model="drip") >= 1
    assert metric(gateway, "pickllm_decisions_total", router="r", model="good") == 4


def test_size_cap_ends_an_endless_body(serve: Serve, hostile: HostileServer, upstream: str) -> None:
    gateway = serve(
        config(hostile.url, upstream, f'models = ["endless-body"]\nmax_response_bytes = {CAP}')
    )
    with (
        fails_once(gateway, "endless-body", "too_large"),
        pytest.raises(openai.APIStatusError) as raised,
    ):
        ask(gateway)
    assert raised.value.status_code == 502
    assert f"endless-body: the answer exceeds max_response_bytes = {CAP}" in str(raised.value)


def test_size_cap_ends_an_endless_stream(
    serve: Serve, hostile: HostileServer, upstream: str
) -> None:
    gateway = serve(
        config(hostile.url, upstream, f'models = ["endless-stream"]\nmax_response_bytes = {CAP}')
    )
    with (
        fails_once(gateway, "endless-stream", "too_large"),
        pytest.raises(openai.APIError, match=f"exceeds max_response_bytes = {CAP}"),
    ):
        ask(gateway, stream=True)
