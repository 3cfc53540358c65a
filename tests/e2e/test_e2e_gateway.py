"""`pickllm serve` in front of two real LLMs (SmolLM2-135M and Gemma 3 270M on llama.cpp),
called with the real openai SDK: answers, streams with time to first token, usage-based cost,
and feedback, all with the servers' real outputs."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway_servers import KEY, Process, start
from servers import GEMMA3, SMOLLM2, free_port


@pytest.fixture
def gateway(smollm2_url: str, gemma3_url: str, tmp_path: Path) -> Iterator[Process]:
    config = tmp_path / "pickllm.toml"
    config.write_text(
        f"""
[server]
api_keys = ["env:PICKLLM_TEST_KEY"]
[models.smollm2]
base_url = "{smollm2_url}"
model_id = "{SMOLLM2}"
input_price = 0.02
output_price = 0.05
max_tokens = 8
timeout = 120.0
[models.gemma3]
base_url = "{gemma3_url}"
model_id = "{GEMMA3}"
input_price = 0.03
output_price = 0.08
max_tokens = 8
timeout = 120.0
[routers.auto]
models = ["smollm2", "gemma3"]
seed = 5
"""
    )
    port = free_port()
    process = start(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(config), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        tmp_path / "serve.log",
        {"PICKLLM_TEST_KEY": KEY},
    )
    handle = Process(f"http://127.0.0.1:{port}", process, tmp_path / "serve.log")
    yield handle
    handle.stop()


def test_real_models_through_the_gateway(gateway: Process) -> None:
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0, timeout=120)
    question = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=question, temperature=0
    )
    completion = raw.parse()
    assert completion.model == raw.headers["x-pickllm-model"]
    assert completion.model in ("smollm2", "gemma3")
    assert completion.usage is not None
    assert completion.usage.completion_tokens <= 8  # the model's max_tokens cap was applied
    if completion.choices[0].finish_reason == "length":
        assert completion.usage.completion_tokens == 8
    chunks = list(
        client.chat.completions.create(model="auto", messages=question, temperature=0, stream=True)
    )
    # What the model says, even whether it says anything, is up to it; the stream's shape is ours.
    assert {c.model for c in chunks} <= {"smollm2", "gemma3"}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in ("stop", "length")
    assert all(reason is None for reason in finishes[:-1])
    feedback = httpx.post(
        f"{gateway.url}/v1/feedback",
        json={"decision": raw.headers["x-pickllm-decision"], "accuracy": 1.0},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert feedback.status_code == 200
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert "pickllm_upstream_ttft_seconds_count{model=" in metrics
    assert 'pickllm_feedback_settled_total{outcome="feedback",router="auto"} 1.0' in metrics
