"""`pickllm replay --contexts prompts`: one global context, the labels and contexts discovered from
prompts, on RouterBench-format data written by the tests (and on the shared data when present)."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest

from pickllm.cli import main
from pickllm.replay import DataError
from pickllm.replay.contexts import compare_contexts, load_prompt_rows

MODELS = ("alpha", "beta", "gamma")
#: Two task families with their own words; alpha answers code right, beta trivia, gamma neither.
TASKS = {
    "code": ("write a python function that sorts the list and returns it", "alpha"),
    "trivia": ("which river flows through the capital city of this country", "beta"),
}
FILLERS = ["today", "please", "quickly", "now", "again", "thanks", "briefly", "first"]


def write_routerbench(path: Path, per_task: int = 150, seed: int = 0) -> Path:
    """A RouterBench-format CSV: sample_id, prompt, eval_name, then per model its accuracy,
    cost and response columns."""
    draw = random.Random(seed)
    header = ["sample_id", "prompt", "eval_name"]
    for model in MODELS:
        header += [model, f"{model}|total_cost", f"{model}|model_response"]
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for task, (text, best) in TASKS.items():
            for i in range(per_task):
                row: list[object] = [f"{task}.{i}", f"{text} {' '.join(draw.sample(FILLERS, 2))}"]
                row.append(task)
                for model in MODELS:
                    row += [float(model == best), 0.001, "['answer']"]
                writer.writerow(row)
        # An incomplete row (no accuracy for gamma) and one without a prompt: both skipped.
        writer.writerow(
            ["x.1", "some prompt", "code", 1.0, 0.001, "[]", 0.0, 0.001, "[]", "", 0.0, "[]"]
        )
        writer.writerow(["x.2", " ", "code", 1.0, 0.001, "[]", 0.0, 0.001, "[]", 0.0, 0.0, "[]"])
    return path


def test_replay_compares_global_labels_and_discovered_contexts(tmp_path: Path) -> None:
    data = write_routerbench(tmp_path / "bench.csv")
    out = tmp_path / "out"
    args = ["replay", "--data", str(data), "--contexts", "prompts", "--warmup", "40",
            "--sessions", "3", "--weights", "1,0,0", "--no-progress",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["models"] == list(MODELS)
    assert results["queries"] == 300  # the incomplete rows skipped
    assert results["clusters_found"] == [2, 2, 2]
    # The first session's clusters are the two tasks, none misplaced.
    clusters = results["labels_by_cluster"]
    assert sorted(label for labels in clusters.values() for label in labels) == ["code", "trivia"]
    assert all(len(labels) == 1 for labels in clusters.values())
    # One context cannot tell the tasks apart: whatever it picks is right on about half the
    # rows, against 1/3 for a uniform pick and 1 for the best model per task, so it closes
    # about (1/2 - 1/3) / (1 - 1/3) = 25% of the gap. Clusters and labels learn each task's
    # model within a few dozen queries of 300, after the warm-up of 40 (discovered).
    summary = results["summary"]
    assert summary["global"]["mean"] < 0.4
    assert summary["labels"]["worst"] > 0.8
    assert summary["prompts"]["worst"] > 0.6
    text = (out / "summary.txt").read_text()
    for line in ("one global context", "true task labels", "discovered from prompts"):
        assert line in text
    assert (out / "contexts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_loader_keeps_complete_rows_with_their_prompts(tmp_path: Path) -> None:
    data = write_routerbench(tmp_path / "bench.csv", per_task=5)
    models, rows, skipped = load_prompt_rows(data)
    assert models == list(MODELS)
    assert (len(rows), skipped) == (10, 2)
    assert rows[0].label == "code"
    assert rows[0].prompt.startswith(TASKS["code"][0])
    assert rows[0].accuracy == (1.0, 0.0, 0.0)
    assert load_prompt_rows(data, ["gamma", "beta"])[1][5].accuracy == (0.0, 1.0)
    with pytest.raises(DataError, match="model\\(s\\) \\['delta'\\] not in this file"):
        load_prompt_rows(data, ["alpha", "delta"])
    no_prompt = tmp_path / "no_prompt.csv"
    no_prompt.write_text("sample_id,eval_name,alpha,alpha|total_cost\n1,code,1.0,0.0\n")
    with pytest.raises(DataError, match="no 'prompt' column"):
        load_prompt_rows(no_prompt)


def test_sessions_must_outlast_the_warmup(tmp_path: Path) -> None:
    models, rows, _ = load_prompt_rows(write_routerbench(tmp_path / "bench.csv", per_task=10))
    with pytest.raises(DataError, match="20 queries per session do not outlast the warm-up"):
        compare_contexts(models, rows, sessions=1)


def test_another_kind_of_contexts_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["replay", "--contexts", "topics"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "the only kind is 'prompts'" in err
    assert "--only-contexts NAME" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--policies", "ucb"], "--policies do not apply"),
        (["--only-contexts", "poetry"], "--only-contexts: not in the data: ['poetry']"),
        (["--format", "long"], "needs RouterBench-format --data"),
        (["--queries", "20"], "20 queries per session do not outlast the warm-up of 20"),
    ],
)
def test_bad_options_are_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    data = write_routerbench(tmp_path / "bench.csv", per_task=30)
    args = ["replay", "--data", str(data), "--contexts", "prompts", "--warmup", "20",
            "--no-figures", "--out", str(tmp_path / "out"), *extra]  # fmt: skip
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_on_the_shared_routerbench_data(tmp_path: Path, shared_data: Path) -> None:
    """The real prompts: the clusters of the first session are the three task families, none
    misplaced (the figure docs/contexts.md reports), and the three strategies are replayed."""
    models, rows, _ = load_prompt_rows(shared_data / "routerbench")
    result = compare_contexts(models, rows, sessions=1, queries=1500)
    assert result.clusters_found == [3]
    assert all(len(labels) == 1 for labels in result.labels_by_cluster.values())
    assert {label for c in result.labels_by_cluster.values() for label in c} == {
        "arc-challenge",
        "mbpp",
        "winogrande",
    }
    assert all(len(result.gap_closed[s]) == 1 for s in ("global", "labels", "prompts"))
