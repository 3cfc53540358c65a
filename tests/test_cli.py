"""`pickllm replay`: the built-in default, real data, outputs and errors, run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pickllm.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pickllm", *args], capture_output=True, text=True, check=False
    )


def test_replay_default_writes_table_json_and_figures(tmp_path: Path) -> None:
    result = run("replay", "--sessions", "20", "--queries", "60", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "best fixed" in result.stdout
    assert "cost saved vs most expensive" in result.stdout
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["sessions"] == 20
    assert data["queries"] == 60
    labels = {r["label"] for r in data["pooled"]}
    assert {"random", "round-robin", "cheapest", "best fixed", "oracle"} <= labels
    assert "automaton lr=0.05" in labels
    # The main job shows the learner users get from Router(), labelled as the default.
    (default,) = [r for r in data["pooled"] if r["label"].endswith("(default)")]
    assert default["label"] in result.stdout
    for name in ("convergence.png", "cost_latency.png", "cost_accuracy.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_replay_real_routerbench_data(tmp_path: Path, shared_data: Path) -> None:
    code = main(
        [
            "replay",
            "--data",
            str(shared_data / "routerbench"),
            "--llmperf",
            str(shared_data / "llmperf" / "individual"),
            "--models",
            "gpt-4-1106-preview",
            "mistralai/mistral-7b-chat",
            "--only-contexts",
            "mbpp",
            "--sessions",
            "10",
            "--queries",
            "30",
            "--policies",
            "automaton",
            "--learning-rates",
            "0.1",
            "--no-figures",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["models"] == ["gpt-4-1106-preview", "mistralai/mistral-7b-chat"]
    assert list(data["model_means"]) == ["mbpp"]


def test_replay_errors_are_one_clear_line(tmp_path: Path, shared_data: Path) -> None:
    bad = run("replay", "--weights", "1,2", "--out", str(tmp_path))
    assert bad.returncode == 2
    assert "--weights" in bad.stderr
    no_latency = run(
        "replay",
        "--data",
        str(shared_data / "routerbench" / "mbpp_test.csv"),
        "--out",
        str(tmp_path),
    )
    assert no_latency.returncode == 2
    assert "--llmperf" in no_latency.stderr
    assert "Traceback" not in no_latency.stderr


def test_no_subcommand_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "usage: pickllm" in result.stderr
    assert "replay" in result.stderr
    assert result.stdout == ""


def test_version_names_the_installed_package() -> None:
    from pickllm import __version__

    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"pickllm {__version__}"
