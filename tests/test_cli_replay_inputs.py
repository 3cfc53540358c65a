"""`pickllm replay` on any data a user has: input errors are one clean line and exit code 2,
data without latency replays when the reward ignores latency, unknown models get latency
profiles from the command line, and the help and outputs explain themselves."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from pickllm.cli import build_parser, main

#: RouterBench's wide format with models the built-in latency mapping does not know.
HEADER = ["sample_id", "prompt", "eval_name", "my-model", "my-model|total_cost", "other",
          "other|total_cost", "my-model|model_response", "other|model_response"]  # fmt: skip


def routerbench_csv(path: Path, rows: int = 30) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow(
                [f"q{i}", "['Q?']", "quiz", i % 2, 0.001, 1, 0.01, "['a short answer']", "['b']"]
            )
    return path


def replay(tmp_path: Path, *args: str) -> int:
    return main(["replay", "--sessions", "3", "--queries", "20", "--no-figures",
                 "--no-progress", "--out", str(tmp_path / "out"), *args])  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--only-contexts", "nope"], "--only-contexts: not in the data: ['nope']"),
        (["--models", "gpt-5", "gpt-6"], "--models: not in the data: ['gpt-5', 'gpt-6']"),
        (["--models", "mistralai/mistral-7b-chat"], "only one model"),
        (["--policies", "magic"], "--policies: unknown"),
        (["--weights", "1,2"], "--weights takes accuracy,cost,latency"),
        (["--max-cost", "-1"], "max_cost"),
        (["--data", "/nonexistent/file.csv"], "/nonexistent/file.csv"),
    ],
)
def test_input_errors_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert replay(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_sessions_and_queries_must_be_positive(tmp_path: Path, value: str) -> None:
    for option in ("--sessions", "--queries"):
        with pytest.raises(SystemExit) as exit_:
            replay(tmp_path, option, value)
        assert exit_.value.code == 2


def test_a_non_utf8_file_given_directly_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xffsample_id,eval_name\n1,quiz\n")
    result = subprocess.run(
        [sys.executable, "-m", "pickllm", "replay", "--data", str(bad), "--no-figures"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "not UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_without_latency_needs_latencies_only_when_the_reward_weighs_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = routerbench_csv(tmp_path / "quiz.csv")
    assert replay(tmp_path, "--data", str(data)) == 2
    assert "--weights A,C,0" in capsys.readouterr().err
    assert replay(tmp_path, "--data", str(data), "--weights", "1,0.5,0") == 0
    err = capsys.readouterr().err
    assert "latencies are replayed as 0" in err
    assert "quiz has 30 complete queries" not in err, "30 rows cover 20 queries"
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "columns (± is the 95% interval over sessions)" in summary


def test_fewer_rows_than_queries_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = routerbench_csv(tmp_path / "quiz.csv", rows=8)
    assert replay(tmp_path, "--data", str(data), "--weights", "1,0.5,0") == 0
    assert "context quiz has 8 complete queries, fewer than --queries 20" in (
        capsys.readouterr().err
    )


def test_unknown_models_take_latency_profiles_from_the_command_line(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = routerbench_csv(tmp_path / "quiz.csv")
    llmperf = str(shared_data / "llmperf" / "individual")
    assert replay(tmp_path, "--data", str(data), "--llmperf", llmperf) == 2
    err = capsys.readouterr().err
    assert "no latency profile for ['my-model', 'other']" in err
    assert "--latency-profile MODEL=PROFILE" in err
    assert "Traceback" not in err
    ok = replay(
        tmp_path, "--data", str(data), "--llmperf", llmperf,
        "--latency-profile", "my-model=groq_70b", "--default-latency-profile", "together_70b",
    )  # fmt: skip
    assert ok == 0
    assert replay(tmp_path, "--data", str(data), "--llmperf", llmperf,
                  "--latency-profile", "my-model=nope_70b",
                  "--default-latency-profile", "together_70b") == 2  # fmt: skip
    assert "latency profiles not loaded" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        replay(tmp_path, "--latency-profile", "no-equals-sign")


def test_help_gives_every_options_meaning_and_default() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")
    for name in ("replay", "evaluate"):
        sub = subparsers.choices[name]  # type: ignore[attr-defined]
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
        text = " ".join(sub.format_help().split())
        if name == "replay":
            assert "queries per session (default: 200;" in text
            assert "(default: 1,0.5,0.5)" in text
            assert "(default: 0.01,0.05,0.1,0.3)" in text


def test_routerbench_from_the_shared_data_replays_with_latency_weight_zero(
    tmp_path: Path, shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # RouterBench has blank cells (mask 0): they stay missing, not latency 0 (which crashed).
    args = ["--data", str(shared_data / "routerbench"), "--weights", "1,0,0", "--sessions", "4"]
    assert replay(tmp_path, *args, "--queries", "100") == 0
    assert "latencies are replayed as 0" in capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    gap = {(r["scope"], r["label"]): r["metrics"]["gap_closed"]["mean"] for r in results}
    # The cheapest model is far below random everywhere (accuracy 0.3-0.5 against 0.6-0.8): its
    # gap closed is negative, whatever the sessions; the best fixed model closes all of it.
    for context in ("arc-challenge", "mbpp", "winogrande"):
        assert gap[(context, "cheapest")] < 0
        assert gap[(context, "best fixed")] == pytest.approx(1.0)


def test_gap_closed_has_the_sign_of_the_reward_against_random() -> None:
    from pickllm.replay.engine import Session
    from pickllm.replay.experiment import Estimate

    def session(reward: float, best: float, random: float) -> Session:
        return Session(100, 0.0, 0.0, reward / 100, reward, best, random, (), (), ())

    # Below random in total (60 < 62), though in the second session the fixed model beat
    # random where the best fixed model barely did: the mean of per-session ratios would be
    # (-0.5 + 20) / 2 = +9.75.
    sessions = [session(50.0, 80.0, 60.0), session(10.0, 2.1, 2.0)]
    estimate = Estimate.ratio(sessions)
    assert estimate.mean == pytest.approx((60.0 - 62.0) / (82.1 - 62.0))
    assert estimate.mean < 0
    assert estimate.n == 2
    assert math.isnan(Estimate.ratio([session(1.0, 2.0, 2.0)]).mean), "no gap: undefined"
