"""docs/gateway.md: its config example loads, and its curl examples run against `pickllm serve`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gateway_servers import KEY, Serve, base_config
from pickllm.gateway.config import GatewayConfig

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def test_the_config_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PICKLLM_KEY", "k")
    monkeypatch.setenv("SMALL_KEY", "s")
    (config,) = blocks("toml")
    loaded = GatewayConfig.from_toml(config, "docs/gateway.md")
    assert loaded.routers["auto"].models == ["small", "large"]


def test_the_curl_examples_run(serve: Serve, upstream: str, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed (.ci/run installs it)")
    gateway = serve(base_config(upstream))
    examples = [block for block in blocks("bash") if "curl" in block]
    assert examples
    for example in examples:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", example],
            cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "PICKLLM_URL": gateway.url, "PICKLLM_KEY": KEY},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        # the feedback call at the end was accepted: the decision id went round trip
        assert '"accepted":true' in done.stdout.replace(" ", "")


def readme_blocks(language: str) -> list[str]:
    text = (DOC.parents[1] / "README.md").read_text()
    body = text.split("## Serve it over HTTP", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, flags=re.DOTALL)


def test_the_readme_gateway_section_runs(
    serve: Serve, upstream: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's config, served in front of the local upstream (its URLs swapped for the
    upstream's), and its client code as written: 20 answers, 20 feedbacks, and the decisions."""
    (config,) = readme_blocks("toml")
    config = config.replace("http://127.0.0.1:8080/v1", upstream)
    config = config.replace("http://127.0.0.1:8081/v1", upstream)
    gateway = serve(config, env={"PICKLLM_KEY": KEY})
    (bash,) = readme_blocks("bash")
    assert "pickllm serve --config pickllm.toml --port 4000" in bash
    (client,) = readme_blocks("python")
    monkeypatch.setenv("PICKLLM_KEY", KEY)
    code = client.replace("http://127.0.0.1:4000", gateway.url)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["client"].close()  # the README's script leaves it to the end of its process
    printed = capsys.readouterr().out
    counts = re.findall(r'pickllm_decisions_total\{context="astronomy",model="(\w+)",', printed)
    assert sorted(counts) == ["large", "small"] or counts in (["small"], ["large"])
    total = sum(float(line.rsplit(" ", 1)[1]) for line in printed.splitlines())
    assert total == 20
