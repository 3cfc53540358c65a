"""Usage errors of `pickllm serve`, `pickllm evaluate` and `pickllm replay`: each is one line on
stderr and exit status 2, printed before any work is done or any banner claims the gateway is
serving. Each runs the real console entry point in a subprocess, as a user would; a check that
regressed into serving would hit the subprocess timeout and fail, never hang."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pickllm import UCB, ConfigError
from pickllm.gateway.config import GatewayConfig

CONFIG = """
[server]
api_keys = ["env:PICKLLM_EDGE_KEY"]
[models.small]
base_url = "http://127.0.0.1:9/v1"
[routers.auto]
models = ["small"]
"""


def pickllm(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pickllm", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def assert_usage_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.stderr
    assert "http://" not in result.stderr  # no banner


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "pickllm.toml"
    path.write_text(CONFIG)
    return path


@pytest.mark.parametrize("port", ["99999", "0", "-1", "http"])
def test_serve_refuses_a_port_out_of_range(config: Path, port: str) -> None:
    result = pickllm(
        "serve", "--config", str(config), "--port", port, env={"PICKLLM_EDGE_KEY": "k"}
    )
    assert_usage_error(result, "--port", port)


def test_serve_reports_a_port_in_use_before_the_banner(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = pickllm(
            "serve", "--config", str(config), "--port", str(port), env={"PICKLLM_EDGE_KEY": "k"}
        )
    assert_usage_error(result, f"cannot listen on 127.0.0.1:{port}", "in use")


def test_serve_reports_a_missing_environment_variable_before_the_banner(config: Path) -> None:
    result = pickllm("serve", "--config", str(config), "--port", "1")
    assert_usage_error(result, "server.api_keys[0]", "PICKLLM_EDGE_KEY", "not set")


def test_serve_reports_a_misspelt_shared_key_before_any_worker_starts(tmp_path: Path) -> None:
    """A typo in ``shared`` is a load error with its line (issue 21), not workers that
    crash-loop; the URL's password is never shown."""
    path = tmp_path / "pickllm.toml"
    shared = 'shared = { url = "redis://:hunter2@127.0.0.1:9/0", name = "s", bufer = 10 }\n'
    path.write_text(CONFIG + shared)
    result = pickllm("serve", "--config", str(path), env={"PICKLLM_EDGE_KEY": "k"})
    assert_usage_error(
        result, f"{path}:8: routers.auto.shared.bufer: unknown key (did you mean 'buffer'?)"
    )
    assert "hunter2" not in result.stderr


def test_serve_help_shows_the_defaults() -> None:
    result = pickllm("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for default in ("(default: 127.0.0.1)", "(default: 4000)", "(default: 1)"):
        assert default in text


def test_evaluate_names_a_typo_in_a_policy_before_reading_the_log(tmp_path: Path) -> None:
    # The log does not exist: the policy is checked first, so its error is the one reported.
    result = pickllm(
        "evaluate",
        "--log",
        str(tmp_path / "no-such-log"),
        "--policy",
        '{"kind": "ucb", "exploraton": 1}',
    )
    assert_usage_error(result, "--policy", "UCB has no setting 'exploraton'", "exploration")


@pytest.mark.parametrize(
    ("option", "name", "message"),
    [
        ("--json", "missing-folder/results.json", "does not exist"),
        ("--parquet", "missing-folder/log.parquet", "does not exist"),
        ("--json", ".", "is a folder"),
    ],
)
def test_evaluate_checks_its_outputs_before_reading_the_log(
    tmp_path: Path, option: str, name: str, message: str
) -> None:
    result = pickllm(
        "evaluate", "--log", str(tmp_path / "no-such-log"), option, str(tmp_path / name)
    )
    assert_usage_error(result, option, message)


def test_replay_checks_out_before_the_run(tmp_path: Path) -> None:
    out = tmp_path / "a-file"
    out.write_text("")
    result = pickllm("replay", "--out", str(out), "--no-figures")
    # Refused at once: the run's first line ("replaying ...") never came.
    assert_usage_error(result, "--out", "is a file")


def test_policy_validation_names_the_problem_once() -> None:
    with pytest.raises(ConfigError) as caught:
        UCB(exploration=-1.0)
    assert str(caught.value) == "UCB: exploration must be finite and > 0, got -1"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("max_response_bytes = 1.5", "must be a whole number > 0, or false for unbounded"),
        ('deadline = "soon"', "must be a number > 0, or false for unbounded"),
        ("breaker = 3", "must be a table of CircuitBreaker fields, or false to disable it"),
        ('policy = { kind = "ucb", exploration = -1.0 }', "UCB: exploration must be finite"),
    ],
)
def test_config_validation_gives_one_message_per_problem(line: str, message: str) -> None:
    text = CONFIG.replace('models = ["small"]', f'models = ["small"]\n{line}')
    with pytest.raises(ConfigError) as caught:
        GatewayConfig.from_toml(text, "pickllm.toml")
    (error_line,) = str(caught.value).splitlines()
    assert error_line.startswith("pickllm.toml:8: routers.auto.")
    assert error_line.count(message) == 1
    assert "Value error" not in error_line
