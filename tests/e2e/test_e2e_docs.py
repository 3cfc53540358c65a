"""The README's and docs' examples that talk to LLM servers, run as written against the servers
the docs tell users to start: scripts/serve-local.sh's models, with its flags (checked here), on
the fixtures' free ports instead of 8080 and 8081. Only the addresses are swapped.

(The other server examples run elsewhere against these servers too: the README's "Route real
prompts" in test_e2e_route.py, docs/scorers.md's in test_e2e_scorers.py.)
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO_ROOT
from gateway_servers import KEY, Process, start
from servers import GEMMA3, SMOLLM2, SMOLLM2_EMBEDDINGS, free_port, model_flags

README = REPO_ROOT / "README.md"


def section(text: str, heading: str) -> str:
    return text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_serve_local_serves_what_the_fixtures_serve() -> None:
    script = (REPO_ROOT / "scripts" / "serve-local.sh").read_text().replace("\\\n", " ")
    served = {}
    for line in script.splitlines():
        if line.startswith("serve 80"):
            _, port, model_option, _model_path, *flags = shlex.split(line)
            assert model_option == "--model"
            served[int(port)] = flags
    assert served == {
        8080: model_flags(SMOLLM2),
        8081: model_flags(GEMMA3, chat_format="gemma"),
        8082: model_flags(SMOLLM2_EMBEDDINGS, embedding=True, n_ctx=512),
    }


@pytest.fixture
def readme_gateway(smollm2_url: str, gemma3_url: str, tmp_path: Path) -> Any:
    """`pickllm serve` with the README's config as written, its URLs swapped for the fixtures'."""
    (config,) = blocks(section(README.read_text(), "Serve it over HTTP"), "toml")
    assert config.count("max_tokens = 64") == 2  # what keeps the example within its deadline
    config = config.replace("http://127.0.0.1:8080/v1", smollm2_url)
    config = config.replace("http://127.0.0.1:8081/v1", gemma3_url)
    path = tmp_path / "pickllm.toml"
    path.write_text(config)
    port = free_port()
    process = start(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(path), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        tmp_path / "serve.log",
        {"PICKLLM_KEY": KEY},
    )
    gateway = Process(f"http://127.0.0.1:{port}", process, tmp_path / "serve.log")
    yield gateway
    gateway.stop()


def test_the_readme_gateway_example_runs_on_the_local_models(
    readme_gateway: Process, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import httpx

    text = section(README.read_text(), "Serve it over HTTP")
    (bash,) = blocks(text, "bash")
    assert "pickllm serve --config pickllm.toml --port 4000" in bash
    (client,) = blocks(text, "python")
    monkeypatch.setenv("PICKLLM_KEY", KEY)
    namespace: dict[str, Any] = {}
    # As written: the openai SDK with its default retries, 20 questions, 20 feedbacks.
    exec(compile(client.replace("http://127.0.0.1:4000", readme_gateway.url), "README.md", "exec"),
         namespace)  # fmt: skip
    namespace["client"].close()
    printed = capsys.readouterr().out
    counts = re.findall(r'pickllm_decisions_total\{context="astronomy",model="(\w+)",', printed)
    assert set(counts) <= {"small", "large"}
    assert sum(float(line.rsplit(" ", 1)[1]) for line in printed.splitlines()) == 20
    metrics = httpx.get(f"{readme_gateway.url}/metrics").text
    # Every answer came back in time from its model: no deadline, no failure, no retry.
    assert "pickllm_upstream_failures_total{" not in metrics
    settled = 'pickllm_feedback_settled_total{outcome="feedback",router="auto"} 20.0'
    assert settled in metrics


@pytest.mark.anyio
# LiteLLM's own types make pydantic warn; not pickllm's to fix (as in tests/gateway/test_litellm).
@pytest.mark.filterwarnings("ignore:Items? .* using the `ReadOnly` qualifier:UserWarning")
async def test_the_litellm_example_runs_on_the_local_models(
    smollm2_url: str, gemma3_url: str
) -> None:
    """docs/gateway.md's LiteLLM example as written, but for its two server addresses."""
    import anyio
    import litellm

    from pickllm import Router, default_policy

    doc = (REPO_ROOT / "docs" / "gateway.md").read_text()
    (code,) = blocks(doc, "python")
    code = code.replace("http://127.0.0.1:8080/v1", smollm2_url)
    code = code.replace("http://127.0.0.1:8081/v1", gemma3_url)
    namespace: dict[str, Any] = {}
    try:
        exec(compile(code, "docs/gateway.md", "exec"), namespace)
        answer = await namespace["ask"]("Name the largest planet.", "req-1")
        assert isinstance(answer, str)
        strategy = namespace["strategy"]
        (router,) = strategy.routers.values()
        assert isinstance(router, Router)
        assert router.policy == default_policy()
        strategy.feedback("req-1", accuracy=1.0)
        with anyio.fail_after(30):  # LiteLLM logs the call's outcome in a background task
            while router.pending:
                await anyio.sleep(0.01)
        assert sum(router.feedback_counts("support").values()) == 1
    finally:
        # LiteLLM caches its HTTP clients process-wide: close them while this loop runs, or the
        # garbage collector finds their sockets in a later test (see tests/gateway/test_litellm).
        await litellm.close_litellm_async_clients()
        litellm.in_memory_llm_clients_cache.flush_cache()
