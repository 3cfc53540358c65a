"""``pickllm evaluate`` end to end: real routed traffic to local OpenAI-compatible servers is
logged by the router, the command reads the log, and its estimates are checked against the
truth: the exact value of each fixed model, and the replay engine's value of a learner.

The traffic is deterministic: each query's context and answer key come from a seeded generator,
each model always answers the same letter, and the reward ignores latency (the one quantity the
network makes random), so every estimate is the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import random
from array import array
from pathlib import Path

import pytest

from model_farm import answer, model_farm
from pickllm import LearningAutomaton, Model, OpenAICompatible, QLearning, Reward, Router
from pickllm.cli import main
from pickllm.replay.engine import Strategy, Table, run_sessions
from pickllm.scorers import MultipleChoice

#: model -> (the letter it always answers, USD per call).
MODELS = {"big": ("B", 0.008), "mid": ("C", 0.002), "small": ("A", 0.0004)}
#: The answer keys each context's queries are drawn from, uniformly.
KEYS = {"math": "BBBBCCCAAB", "chat": "CCCCCBBAAA"}
REWARD = Reward(accuracy=1.0, cost=0.5, latency=0.0, max_cost=0.01)
UNIFORM = QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False)
QUERIES = 900
HORIZON = 30


def reward_of(model: str, key: str) -> float:
    letter, cost = MODELS[model]
    return REWARD.compute(accuracy=float(letter == key), cost=cost)


def fixed_truth(model: str) -> float:
    per_context = [sum(reward_of(model, k) for k in keys) / len(keys) for keys in KEYS.values()]
    return sum(per_context) / len(per_context)


def learner_truth(policy: LearningAutomaton) -> float:
    """The learner's mean reward over HORIZON queries, by the replay engine, on tables of the
    same world (every key repeated 40 times, so drawing without replacement is as good as with
    it over a horizon of 30)."""
    names = tuple(MODELS)
    tables = []
    for context, keys in KEYS.items():
        rows = list(keys) * 40
        accuracy = array("d", [float(MODELS[m][0] == k) for k in rows for m in names])
        cost = array("d", [MODELS[m][1] for _ in rows for m in names])
        tables.append(Table(context, names, accuracy, cost, array("d", [0.0] * len(cost))))
    sessions = run_sessions(tables, REWARD, Strategy.learner(policy), HORIZON, range(2000))
    return sum(s.mean_reward for s in sessions) / len(sessions)


@pytest.fixture(scope="module")
def routed_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """QUERIES real routed queries, two thirds sync and one third concurrent async."""
    folder = tmp_path_factory.mktemp("log")
    rng = random.Random(2026)
    queries = []
    for _ in range(QUERIES):
        context = rng.choice(sorted(KEYS))
        queries.append((context, rng.choice(KEYS[context])))
    behaviours = {name: answer(letter, usage=(1000, 1000)) for name, (letter, _) in MODELS.items()}
    with model_farm(behaviours) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="local")
        # A price per million tokens that makes 2,000 tokens cost the model's cost per call.
        models = [
            Model(name, backend=backend, input_price=cost * 500, output_price=cost * 500)
            for name, (_, cost) in MODELS.items()
        ]
        router = Router(
            models,
            policy=UNIFORM,
            reward=REWARD,
            scorer=MultipleChoice(),
            seed=7,
            decision_log=folder,
        )
        split = 2 * QUERIES // 3
        for context, key in queries[:split]:
            router.route("Pick one: A, B or C?", context=context, reference=key)

        async def rest() -> None:
            for start in range(split, QUERIES, 20):
                batch = queries[start : start + 20]
                await asyncio.gather(
                    *(router.aroute("Pick?", context=c, reference=k) for c, k in batch)
                )
            await router.aclose()

        asyncio.run(rest())
    assert sum(farm.calls.values()) == QUERIES
    return folder


def test_pickllm_evaluate_matches_the_truth(
    routed_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    argv = ["evaluate", "--log", str(routed_log), "--json", str(out), "--horizon", str(HORIZON)]
    for name in MODELS:
        argv += ["--policy", name]
    argv += ["--policy", '{"kind": "learning_automaton", "learning_rate": 0.1}']
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "columns:" in table
    results = json.loads(out.read_text())
    assert results["records"] == QUERIES
    logger, *fixed, learner = results["policies"]
    assert logger["kind"] == "logger"
    for estimate in fixed:
        truth = fixed_truth(estimate["label"])
        for method in ("ips", "snips", "dr"):
            interval = estimate["estimates"]["reward"][method]
            assert interval["low"] <= truth <= interval["high"], (estimate["label"], method)
        accuracy = estimate["estimates"]["accuracy"]["dr"]
        expected = sum(
            sum(MODELS[estimate["label"]][0] == k for k in keys) / len(keys)
            for keys in KEYS.values()
        ) / len(KEYS)
        assert accuracy["low"] <= expected <= accuracy["high"]
        latency = estimate["estimates"]["latency"]["dr"]["value"]
        assert latency > 0, "real calls take time"
    assert learner["label"] == "learning_automaton"
    assert learner["horizon"] == HORIZON
    assert learner["sessions"] >= 8, "a third of 900 records accepted, 30 per session"
    interval = learner["estimates"]["reward"]["replay"]
    truth = learner_truth(LearningAutomaton(0.1))
    assert interval["low"] <= truth <= interval["high"], (interval, truth)


def test_without_policies_every_model_and_builtin_learner_is_evaluated(
    routed_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--log", str(routed_log), "--weights", "1,0,0"]) == 0
    table = capsys.readouterr().out
    for name in (*MODELS, "learning_automaton", "q_learning", "logging policy"):
        assert name in table


def test_parquet_export_from_the_command(routed_log: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    target = tmp_path / "log.parquet"
    assert (
        main(["evaluate", "--log", str(routed_log), "--policy", "big", "--parquet", str(target)])
        == 0
    )
    assert pq.read_table(target).num_rows == QUERIES


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--log", "/nonexistent/log"], "no decision log at"),
        (["--policy", "gpt-5"], "neither a model of the log"),
        (["--policy", "{oops"], "not valid JSON"),
        (["--horizon", "0"], "horizon must be an integer >= 1"),
        (["--max-cost", "-1"], "max_cost"),
    ],
)
def test_input_errors_are_one_line_and_exit_2(
    routed_log: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    full = ["evaluate", "--log", str(routed_log), *argv]
    assert main(full) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_non_utf8_log_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "decisions-x-00001.jsonl").write_bytes(b"\xff\xfe\n")
    assert main(["evaluate", "--log", str(tmp_path)]) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_bad_weights_are_an_argument_error(routed_log: Path) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--log", str(routed_log), "--weights", "1,2"])
    assert exit_.value.code == 2


def test_replay_points_a_decision_log_to_evaluate(
    routed_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", "--data", str(routed_log), "--no-figures"]) == 2
    assert "use pickllm evaluate --log PATH" in capsys.readouterr().err
