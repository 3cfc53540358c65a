"""The gateway records the route loop's spans too: `pickllm serve`'s app in this process (so the
SDK's in-memory exporter sees its spans), on uvicorn and a free port, the local upstream as a
real process, and the real `openai` SDK as the client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import openai
import pytest
import uvicorn
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gateway_servers import KEY, running_upstream
from pickllm.gateway.app import create_app
from pickllm.gateway.config import GatewayConfig
from servers import free_port


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_upstream(tmp_path_factory.mktemp("upstream")) as url:
        yield url


@pytest.fixture
def gateway(upstream: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PICKLLM_TEST_KEY", KEY)
    config = GatewayConfig.from_toml(
        f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]

[models.good]
base_url = "{upstream}"
model_id = "good-model"

[models.broken]
base_url = "{upstream}"
model_id = "fail-500"

[routers.auto]
models = ["broken", "good"]
breaker = false
seed = 3
"""
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:  # an event of the server, polled; bounded by the deadline
        assert thread.is_alive(), "the gateway did not start"
        assert time.monotonic() < deadline, "the gateway did not start in time"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=60)


def test_a_routed_request_records_the_route_and_each_attempt(
    gateway: str, spans: InMemorySpanExporter
) -> None:
    # Requests until one tries "broken" first (seeded, so always the same one; each picks it
    # with probability 1/2 until it does, as no feedback moves the learner before).
    with openai.OpenAI(base_url=f"{gateway}/v1", api_key=KEY, max_retries=0) as client:
        for _ in range(20):
            spans.clear()
            raw = client.chat.completions.with_raw_response.create(
                model="auto",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"X-PickLLM-Context": "legal"},
            )
            by_name = {s.name: s for s in spans.get_finished_spans()}
            if "chat fail-500" in by_name:
                break
        else:
            pytest.fail("the router never tried the failing model first")
    assert raw.headers["x-pickllm-model"] == "good"
    assert set(by_name) == {"pickllm.route", "chat fail-500", "chat good-model"}
    root, failed, answered = (
        by_name[n] for n in ("pickllm.route", "chat fail-500", "chat good-model")
    )
    for child in (failed, answered):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.kind == SpanKind.CLIENT
    assert root.attributes is not None
    assert root.attributes["pickllm.router"] == "auto"
    assert root.attributes["pickllm.context"] == "legal"
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["pickllm.attempt"] == 1
    assert failed.attributes["gen_ai.request.model"] == "fail-500"
    assert answered.attributes is not None
    attributes = dict(answered.attributes)
    assert attributes["pickllm.attempt"] == 2
    assert attributes["pickllm.model"] == "good"
    assert attributes["pickllm.probability"] == 1.0  # the fallback: the only model left
    assert attributes["gen_ai.request.model"] == "good-model"
    assert attributes["gen_ai.provider.name"] == "openai"
    usage = raw.parse().usage
    assert usage is not None
    assert attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
