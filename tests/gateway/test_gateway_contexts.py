"""Prompt contexts in `pickllm serve` (``contexts = { kind = "prompts" }``): a real gateway
process driven by the real openai SDK in front of the local upstream (tests/gateway/upstream.py).
The requests are sent one after another and every choice is seeded, so each run is the same."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from gateway_servers import KEY, Process, Serve, upstream_stats
from pickllm import ConfigError
from pickllm.gateway.config import GatewayConfig, load_config
from pickllm.gateway.routes import chat_text
from redis_servers import wait_for

#: Two kinds of prompt, each with the model that answers it right, and filler words both use.
TASKS = {
    "write a short python function that parses the input and returns": "good",
    "which city is the capital of this country and when was it founded": "bad",
}
FILLERS = ["today", "please", "quickly", "now", "again", "thanks", "briefly", "first"]
WARMUP = 20
#: A word only the prompts hold: it must appear in no log.
SECRET_WORD = "zanzibarquokka"


def config(upstream: str, folder: Path) -> str:
    # UCB with no floor: deterministic, so the same requests get the same choices.
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
decision_log = "{folder}"
contexts = {{ kind = "prompts", warmup = {WARMUP}, max_clusters = 4, max_prompt_bytes = 2000 }}

[routers.tenants]
models = ["good", "bad"]
seed = 7
contexts = {{ kind = "prompts", warmup = {WARMUP}, max_clusters = 4, combine = true }}
"""


def prompts(count: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, kind) pairs, the two kinds alternating, fillers drawn from ``seed``."""
    draw = random.Random(seed)
    kinds = list(TASKS)
    return [
        (f"{kinds[i % 2]} {' '.join(draw.sample(FILLERS, 2))} {SECRET_WORD}", kinds[i % 2])
        for i in range(count)
    ]


def ask(
    client: openai.OpenAI, gateway: Process, router: str, prompt: str, **headers: str
) -> tuple[str, str]:
    """Send one prompt (the system message is text the mapper reads too) and feed back
    whether the right model answered; returns the response's context and model."""
    raw = client.chat.completions.with_raw_response.create(
        model=router,
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": prompt},
        ],
        extra_headers=headers,
    )
    model = raw.headers["x-pickllm-model"]
    kind = next(task for task in TASKS if prompt.startswith(task))
    feedback = httpx.post(
        f"{gateway.url}/v1/feedback",
        json={
            "decision": raw.headers["x-pickllm-decision"],
            "accuracy": float(model == TASKS[kind]),
        },
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert feedback.status_code == 200, feedback.text
    return raw.headers["x-pickllm-context"], model


def fitted(gateway: Process, router: str) -> bool:
    stats = httpx.get(f"{gateway.url}/v1/stats", headers={"Authorization": f"Bearer {KEY}"})
    return bool(stats.json()["routers"][router]["prompt_contexts"]["fitted"])


def test_warmup_then_each_prompt_in_its_cluster(
    serve: Serve, upstream: str, tmp_path: Path
) -> None:
    folder = tmp_path / "decisions"
    gateway = serve(config(upstream, folder))
    warm, after = prompts(WARMUP, 0), prompts(60, 1)
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0) as client:
        # The warm-up is served in one context; the request that completes it starts the fit,
        # in the background (tests/gateway/test_gateway_contexts_fit.py holds it to show that).
        assert [ask(client, gateway, "auto", p)[0] for p, _ in warm] == ["default"] * WARMUP
        wait_for(lambda: fitted(gateway, "auto"), timeout=120)
        seen: dict[str, set[str]] = {kind: set() for kind in TASKS}
        right: dict[str, list[bool]] = {kind: [] for kind in TASKS}
        for prompt, kind in after:
            context, model = ask(client, gateway, "auto", prompt)
            seen[kind].add(context)
            right[kind].append(model == TASKS[kind])
        # An explicit context still wins over the prompt's cluster.
        assert ask(client, gateway, "auto", after[0][0], **{"X-PickLLM-Context": "legal"})[0] == (
            "legal"
        )
        # Combined: the client's context, then the cluster of the prompt.
        tenant = [
            ask(client, gateway, "tenants", p, **{"X-PickLLM-Context": "acme"})[0] for p, _ in warm
        ]
        wait_for(lambda: fitted(gateway, "tenants"), timeout=120)
        tenant += [
            ask(client, gateway, "tenants", p, **{"X-PickLLM-Context": "acme"})[0]
            for p, _ in after[:4]
        ]
    code, city = (seen[kind] for kind in TASKS)
    # Each kind of prompt in one cluster of its own.
    assert len(code) == 1, seen
    assert len(city) == 1, seen
    assert code != city
    assert all(context.startswith("cluster-") for context in code | city)
    # Each cluster learns its own best model: UCB without a floor is deterministic, and with
    # rewards of exactly 1 and 0 it returns to the wrong model only while that model's
    # confidence bonus exceeds the gap of 1, a handful of times in 30 (the warm-up's feedback,
    # replayed into the clusters, counts too).
    for kind in TASKS:
        assert sum(right[kind][-20:]) >= 18, (kind, right[kind])
    assert tenant[:WARMUP] == ["acme"] * WARMUP
    assert set(tenant[WARMUP:]) == {f"acme/{next(iter(code))}", f"acme/{next(iter(city))}"}
    # The prompts were never logged: not by the server, not in the decision log.
    output = gateway.stop()
    assert SECRET_WORD not in output
    logged = b"".join(path.read_bytes() for path in folder.rglob("*") if path.is_file())
    assert logged
    assert SECRET_WORD.encode() not in logged


def test_a_prompt_too_long_is_refused_before_any_call(
    serve: Serve, upstream: str, tmp_path: Path
) -> None:
    gateway = serve(config(upstream, tmp_path / "decisions"))
    before = upstream_stats(upstream)["requests"]
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(
                model="auto", messages=[{"role": "user", "content": "word " * 500}]
            )
        # A router without contexts takes the same prompt.
        done = client.chat.completions.create(
            model="good", messages=[{"role": "user", "content": "word " * 500}]
        )
    assert caught.value.code == "prompt_too_long"
    assert "max_prompt_bytes=2000" in caught.value.message
    assert done.choices[0].message.content
    assert upstream_stats(upstream)["requests"] == before + 1


def test_chat_text_reads_every_message_text() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "in this picture?"},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "user", "content": "Answer in French."},
    ]
    assert chat_text(messages) == "Be brief.\nWhat is\nin this picture?\nAnswer in French."
    assert chat_text([{"role": "user", "content": [{"type": "image_url"}]}]) == ""


MODELS = """
[models.small]
base_url = "http://127.0.0.1:8080/v1"
[models.large]
base_url = "http://127.0.0.1:8081/v1"
[routers.auto]
models = ["small", "large"]
"""


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('{ kind = "prompts", warmup = 5 }', "routers.auto.contexts: PromptContexts.warmup"),
        ('{ kind = "topics" }', "routers.auto.contexts.kind: Input should be 'prompts'"),
        ('{ kind = "prompts", clusters = 3 }', "PromptContexts has no setting 'clusters'"),
        ("{ warmup = 30 }", "routers.auto.contexts.kind: Field required"),
    ],
)
def test_bad_contexts_settings_name_their_line(setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.from_toml(MODELS + f"contexts = {setting}\n", "pickllm.toml")
    assert str(caught.value).startswith("pickllm.toml:8: ")
    assert message in str(caught.value)


def test_several_workers_need_shared_state(tmp_path: Path) -> None:
    path = tmp_path / "pickllm.toml"
    path.write_text(MODELS + 'contexts = { kind = "prompts" }\n')
    assert load_config(path).routers["auto"].build_contexts() is not None
    with pytest.raises(ConfigError, match=r"pickllm.toml:8: routers.auto.contexts: .* need shared"):
        load_config(path, workers=2)
    done = subprocess.run(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(path), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "prompt contexts with --workers 2 need shared state" in done.stderr
