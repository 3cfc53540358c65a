"""evaluate() on logs written by a Router: unbiased estimates, support warnings, learner replay.

The world is synthetic and known exactly: per context, each model's accuracy is Bernoulli with a
known mean and its cost fixed, so the true value of every fixed model is computed, not guessed.
Seeds are fixed, so each run is the same; the margins are the estimators' own 95% intervals
(or 4 standard errors where a test checks agreement over many records).
"""

from __future__ import annotations

import json
import random
from array import array
from pathlib import Path

import pytest

from pickllm import LearningAutomaton, QLearning, Reward, Router
from pickllm.evaluate import evaluate
from pickllm.evaluate.evaluation import metrics_for
from pickllm.evaluate.rejection import replay_learner
from pickllm.logs import read_log
from pickllm.logs.reader import DecisionRecord
from pickllm.replay.engine import Strategy, Table, run_sessions

POOL = ("big", "mid", "small")
ACCURACY = {
    "math": {"big": 0.9, "mid": 0.6, "small": 0.2},
    "chat": {"big": 0.8, "mid": 0.8, "small": 0.7},
}
COST = {"big": 0.008, "mid": 0.002, "small": 0.0004}
REWARD = Reward(accuracy=1.0, cost=0.5, latency=0.0, max_cost=0.01)
#: Exploration everywhere, forever: the uniform logger (lock=False: it never settles).
UNIFORM = QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False)


def truth(model: str) -> float:
    """Exact expected reward: reward is linear in accuracy for a fixed cost."""
    values = [
        REWARD.compute(accuracy=1.0, cost=COST[model]) * ACCURACY[c][model]
        + REWARD.compute(accuracy=0.0, cost=COST[model]) * (1 - ACCURACY[c][model])
        for c in ACCURACY
    ]
    return sum(values) / len(values)


def write_log(folder: Path, policy: QLearning | LearningAutomaton, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with Router(POOL, policy=policy, reward=REWARD, seed=seed, decision_log=folder) as router:
        for _ in range(n):
            context = rng.choice(sorted(ACCURACY))
            d = router.select(context)
            accuracy = float(rng.random() < ACCURACY[context][d.model])
            router.feedback(d, accuracy=accuracy, cost=COST[d.model], latency=0.0)


@pytest.fixture(scope="module")
def uniform_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("uniform")
    write_log(folder, UNIFORM, 6000, seed=11)
    return folder


def test_fixed_models_from_a_uniform_log_cover_the_truth(uniform_log: Path) -> None:
    result = evaluate(uniform_log, list(POOL))
    logger, *fixed = result.policies
    assert logger.kind == "logger"
    assert logger.effective_size == 6000
    for estimate in fixed:
        value = truth(estimate.label)
        for method in ("ips", "snips", "dr"):
            reward = estimate.estimates["reward"][method]
            assert reward.covers(value), (estimate.label, method, reward, value)
        cost = estimate.estimates["cost"]["snips"]
        assert cost.value == pytest.approx(COST[estimate.label]), "one cost per model"
        # Uniform over 3: about a third of the log is about this model.
        assert 1800 < estimate.effective_size < 2200


def test_dr_is_tighter_than_ips(uniform_log: Path) -> None:
    for estimate in evaluate(uniform_log, list(POOL)).policies[1:]:
        by = estimate.estimates["reward"]
        assert by["dr"].half_width < by["ips"].half_width


def test_a_learning_logger_is_corrected_for(tmp_path: Path) -> None:
    """An automaton logs non-uniformly, and its propensities drift; SNIPS and DR still find
    each model's value (lock=False and a low rate keep every model explored)."""
    write_log(tmp_path, LearningAutomaton(0.002, lock=False), 8000, seed=5)
    result = evaluate(tmp_path, list(POOL))
    for estimate in result.policies[1:]:
        for method in ("snips", "dr"):
            reward = estimate.estimates["reward"][method]
            assert reward.covers(truth(estimate.label)), (estimate.label, method, reward)


def test_reweighting_judges_the_log_under_other_weights(uniform_log: Path) -> None:
    accuracy_only = Reward(accuracy=1.0, cost=0.0, latency=0.0)
    result = evaluate(uniform_log, ["small"], reward=accuracy_only)
    assert result.reward == accuracy_only
    small = result.policies[1]
    assert small.estimates["reward"]["dr"].value == pytest.approx(
        small.estimates["accuracy"]["dr"].value
    )


def test_missing_support_warns_instead_of_returning_a_number(tmp_path: Path) -> None:
    with Router(POOL, policy=UNIFORM, seed=1, decision_log=tmp_path) as router:
        for _ in range(300):
            router.feedback(router.select("math"), accuracy=1.0)
        rare = router.select("rare")
        router.feedback(rare, accuracy=1.0)
        # Where big was excluded, "always big" takes the logger's choice: no support needed.
        for _ in range(30):
            router.feedback(router.select("chat", exclude=["big"]), accuracy=0.5)
    result = evaluate(tmp_path, list(POOL))
    for estimate in result.policies[1:]:
        if estimate.label == rare.model:
            # Supported: numbers, though IPS (1.01 here, on 331 records) leaves [0, 1].
            assert (
                estimate.warning
                == "IPS reward 1.01 outside [0, 1] (log more, or with more exploration)"
            )
            assert estimate.estimates["reward"]["dr"].value > 0
        else:
            assert estimate.estimates == {}
            assert estimate.warning is not None
            assert estimate.warning.endswith("in rare")


def test_a_model_allowed_but_never_chosen_is_unsupported() -> None:
    record = DecisionRecord(
        router="r",
        id=0,
        time=0.0,
        context="math",
        model="big",
        probability=0.5,
        probabilities=(0.5, 0.5),
        models=("big", "small"),
        allowed=("big", "small"),
        accuracy=1.0,
        cost=0.0,
        latency=0.0,
        reward=1.0,
    )
    from pickllm.logs.reader import LoadedLog

    loaded = LoadedLog([record] * 3, ("big", "small"), {"r": {"reward": {}}}, 0)
    result = evaluate(loaded, ["small", "big"])
    small, big = result.policies[1:]
    assert small.estimates == {}
    assert small.warning is not None
    assert "never chose small" in small.warning
    assert big.estimates["reward"]["snips"].value == 1.0
    assert big.warning is not None
    assert big.warning.startswith("effective sample size 3.0, below 30")


def test_a_locked_logger_gives_no_learner_estimate(tmp_path: Path) -> None:
    with Router(POOL, policy=LearningAutomaton(0.9), seed=1, decision_log=tmp_path) as router:
        for _ in range(200):
            router.feedback(router.select("x"), accuracy=1.0)
    assert router.converged("x") is not None
    (automaton,) = evaluate(tmp_path, [LearningAutomaton()]).policies[1:]
    assert automaton.estimates == {}
    assert automaton.warning is not None
    assert "replay does not apply" in automaton.warning


def tables_of_the_world(rows: int, seed: int) -> list[Table]:
    """The synthetic world as replay tables: ``rows`` sampled queries per context."""
    rng = random.Random(seed)
    out = []
    for context, means in sorted(ACCURACY.items()):
        accuracy = array("d")
        for _ in range(rows):
            accuracy.extend(float(rng.random() < means[m]) for m in POOL)
        cost = array("d", [COST[m] for m in POOL] * rows)
        out.append(Table(context, POOL, accuracy, cost, array("d", [0.0] * len(cost))))
    return out


@pytest.mark.parametrize(
    "policy", [LearningAutomaton(0.1), QLearning(epsilon=0.2)], ids=["automaton", "q"]
)
def test_learner_replay_matches_the_learners_replayed_value(
    uniform_log: Path, policy: LearningAutomaton | QLearning
) -> None:
    """Rejection-sampling replay of a uniform log against the value the replay engine finds
    for the same learner and horizon on the same world (2,000 sessions: its own error is
    about a tenth of the replay interval's half-width)."""
    records = read_log(uniform_log).records
    result = replay_learner(records, POOL, policy, REWARD, metrics_for(REWARD), horizon=60)
    assert 1900 < result.accepted < 2100, "a third of 6,000 records"
    assert result.sessions == result.accepted // 60
    sessions = run_sessions(
        tables_of_the_world(2000, seed=1), REWARD, Strategy.learner(policy), 60, range(2000)
    )
    expected = sum(s.mean_reward for s in sessions) / len(sessions)
    assert result.estimates["reward"].covers(expected), (result.estimates["reward"], expected)


def test_a_deterministic_log_is_refused_naming_the_cause_and_the_command_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pickllm import UCB
    from pickllm.cli import main

    # UCB without its floor picks with probability 1 once every model was tried.
    policy = UCB(floor=0.0, detect_changes=None)
    with Router(POOL, policy=policy, seed=1, decision_log=tmp_path / "log") as router:
        for i in range(300):
            d = router.select("x")
            router.feedback(d, accuracy=1.0 if d.model == "mid" else float(i % 2))
    argv = ["evaluate", "--log", str(tmp_path / "log"), "--policy", "q_learning"]
    assert main([*argv, "--horizon", "1", "--json", str(tmp_path / "out.json")]) == 3
    out = capsys.readouterr().out
    assert "logged decisions gave some allowed model probability 0" in out
    assert "in context 'x'" in out
    assert "converged learner" not in out
    assert "lower --horizon" not in out
    assert json.loads((tmp_path / "out.json").read_text())["trusted"] is False


def test_the_default_logs_support_every_fixed_model_and_every_estimate_has_its_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pickllm.cli import main

    rng = random.Random(5)
    with Router(POOL, seed=2, decision_log=tmp_path / "log") as router:
        for _ in range(3000):
            d = router.select("x")
            router.feedback(d, accuracy=float(rng.random() < ACCURACY["math"][d.model]))
    argv = ["evaluate", "--log", str(tmp_path / "log"), "--json", str(tmp_path / "out.json")]
    for model in POOL:
        argv += ["--policy", model]
    status = main(argv)
    results = json.loads((tmp_path / "out.json").read_text())
    fixed = results["policies"][1:]
    # Every model has support (the floor): numbers, each with its effective sample size.
    assert all(p["estimates"] and p["effective_size"] > 0 for p in fixed)
    # The rarely chosen models rest on the floor's few picks: named, and the status says so.
    doubted = [p["label"] for p in fixed if not p["trusted"]]
    assert doubted
    assert all(
        p["effective_size"] < 30
        or "outside [0, 1]" in p["warning"]
        or "importance weights average" in p["warning"]
        for p in fixed
        if not p["trusted"]
    )
    assert status == 3
    assert results["min_effective_size"] == 30
    assert "warning: " in capsys.readouterr().out
