"""The prompt-context fit never blocks the gateway (issue 23): `pickllm serve` fits in a
supervised worker thread (``background_fit``, its default). The real app runs under uvicorn in a
thread of this process, driven by the real openai SDK, with the fit replaced by one that waits
for the test's signal (or fails): while the fit is held, ``/healthz``, ``/metrics``, the stats
and chat requests are answered, in the warm-up context. Proved by the order of events (the fit
is held until the test releases it), never by durations. A failed fit shows in the stats, a log
line and the ``pickllm_prompt_contexts_state`` gauge, and routing goes on."""

from __future__ import annotations

import logging
import threading
from typing import Any

import httpx
import openai
import pytest

from gateway_servers import KEY, InProcessGateway, upstream_stats
from pickllm import contexts
from pickllm._core import PromptContextsCore
from pickllm.contexts import PromptContexts
from redis_servers import wait_for

WARMUP = 20
LOOP_THREAD = "gateway-loop"
TASKS = {
    "write a short python function that parses the input and returns": "good",
    "which city is the capital of this country and when was it founded": "bad",
}
FILLERS = ["today", "please", "quickly", "now", "again", "thanks", "briefly", "first"]
HEADERS = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key the config names, for the gateway in this process."""
    monkeypatch.setenv("PICKLLM_TEST_KEY", KEY)


class HeldFit:
    """Replaces ``pickllm.contexts.fit_prompts``: announces the fit and the thread it runs on,
    then waits until released, then fits (or fails when told)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool) -> None:
        self.real = contexts.fit_prompts
        self.started = threading.Event()
        self.release = threading.Event()
        self.fail = fail
        self.threads: list[str] = []
        monkeypatch.setattr(contexts, "fit_prompts", self)

    def __call__(self, prompts: list[str], config: PromptContexts) -> PromptContextsCore:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        assert self.release.wait(120), "the test never released the fit"
        if self.fail:
            raise RuntimeError("injected fit failure")
        return self.real(prompts, config)


def config(upstream: str) -> str:
    return f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]

[models.good]
base_url = "{upstream}"
[models.bad]
base_url = "{upstream}"

[routers.auto]
models = ["good", "bad"]
reward = {{ accuracy = 1.0, cost = 0.0, latency = 0.0 }}
policy = {{ kind = "ucb", floor = 0.0, share = 0.0 }}
seed = 7
contexts = {{ kind = "prompts", warmup = {WARMUP}, max_clusters = 4 }}
"""


def ask(client: openai.OpenAI, gateway: InProcessGateway, i: int) -> str:
    """Send prompt ``i`` (the two kinds alternate) and feed back whether the right model
    answered; returns the response's context."""
    kind = list(TASKS)[i % 2]
    raw = client.chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": f"{kind} {FILLERS[i % 8]} {FILLERS[(3 * i) % 8]}"}],
    )
    model = raw.headers["x-pickllm-model"]
    feedback = httpx.post(
        f"{gateway.url}/v1/feedback",
        json={
            "decision": raw.headers["x-pickllm-decision"],
            "accuracy": float(model == TASKS[kind]),
        },
        headers=HEADERS,
        timeout=60,
    )
    assert feedback.status_code == 200, feedback.text
    return raw.headers["x-pickllm-context"]


def prompt_contexts(gateway: InProcessGateway) -> dict[str, Any]:
    stats = httpx.get(f"{gateway.url}/v1/stats", headers=HEADERS, timeout=60).json()
    return dict(stats["routers"]["auto"]["prompt_contexts"])


def state_gauge(gateway: InProcessGateway) -> float:
    text = httpx.get(f"{gateway.url}/metrics", timeout=60).text
    (line,) = [x for x in text.splitlines() if x.startswith("pickllm_prompt_contexts_state{")]
    assert 'router="auto"' in line
    return float(line.rsplit(" ", 1)[1])


def test_the_gateway_answers_while_the_fit_runs_then_routes_by_cluster(
    upstream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldFit(monkeypatch, fail=False)
    gateway = InProcessGateway(config(upstream), LOOP_THREAD)
    try:
        with openai.OpenAI(
            base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=120
        ) as client:
            assert state_gauge(gateway) == 0.0  # warming up
            # The request completing the warm-up is answered although its fit is held.
            assert [ask(client, gateway, i) for i in range(WARMUP)] == ["default"] * WARMUP
            assert held.started.wait(60)
            assert held.threads == ["pickllm-prompt-contexts-fit"], "not on the gateway's loop"
            # The fit is held: everything else is answered meanwhile, in the warm-up context.
            assert httpx.get(f"{gateway.url}/healthz", timeout=60).status_code == 200
            assert state_gauge(gateway) == 1.0  # fitting
            found = prompt_contexts(gateway)
            assert (found["fitted"], found["fitting"], found["fit_error"]) == (False, True, None)
            assert [ask(client, gateway, WARMUP + i) for i in range(4)] == ["default"] * 4
            assert not held.release.is_set(), "all of the above while the fit was held"
            held.release.set()
            wait_for(lambda: prompt_contexts(gateway)["fitted"], timeout=120)
            assert state_gauge(gateway) == 2.0  # fitted
            found = prompt_contexts(gateway)
            assert found["fitting"] is False
            assert len(found["clusters"]) == 2
            assert sum(c["size"] for c in found["clusters"]) == WARMUP
            after = {ask(client, gateway, i) for i in range(40, 60)}
            assert after == {"cluster-0", "cluster-1"}
    finally:
        gateway.stop()


def test_a_failed_fit_shows_in_stats_log_and_metric_and_routing_goes_on(
    upstream: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    held = HeldFit(monkeypatch, fail=True)
    held.release.set()
    gateway = InProcessGateway(config(upstream), LOOP_THREAD)
    try:
        with (
            caplog.at_level(logging.ERROR, logger="pickllm.contexts"),
            openai.OpenAI(
                base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=120
            ) as client,
        ):
            assert [ask(client, gateway, i) for i in range(WARMUP)] == ["default"] * WARMUP
            wait_for(lambda: prompt_contexts(gateway)["fit_error"] is not None, timeout=120)
            found = prompt_contexts(gateway)
            assert found["fit_error"] == "RuntimeError: injected fit failure"
            assert (found["fitted"], found["fitting"]) == (False, False)
            assert state_gauge(gateway) == 3.0  # failed
            assert [ask(client, gateway, WARMUP + i) for i in range(6)] == ["default"] * 6
        logged = [r.getMessage() for r in caplog.records if r.name == "pickllm.contexts"]
        assert logged == [
            "pickllm: the prompt-contexts fit failed, routing stays in the warm-up context: "
            "RuntimeError: injected fit failure"
        ]
    finally:
        gateway.stop()


def test_a_prompt_with_a_lone_surrogate_is_a_400_before_any_call(
    upstream: str,
) -> None:
    """JSON may carry "\\ud800"; UTF-8 cannot, so neither can the mapper: refused with its own
    code (it would otherwise break the fit of the whole warm-up)."""
    gateway = InProcessGateway(config(upstream), LOOP_THREAD)
    before = upstream_stats(upstream)["requests"]
    try:
        answer = httpx.post(
            f"{gateway.url}/v1/chat/completions",
            content=b'{"model": "auto", "messages": [{"role": "user", "content": "hi \\ud800"}]}',
            headers={**HEADERS, "Content-Type": "application/json"},
            timeout=60,
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_prompt"
        assert "lone surrogate at index 3" in answer.json()["error"]["message"]
        assert prompt_contexts(gateway)["warmup_prompts"] == 0
        assert upstream_stats(upstream)["requests"] == before
    finally:
        gateway.stop()
