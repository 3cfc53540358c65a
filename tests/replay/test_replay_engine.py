"""The replay engine and the experiment metrics: determinism, identical sessions across
strategies, exact sums on hand-built tables, and every metric's definition."""

from __future__ import annotations

import math
import statistics
from array import array
from pathlib import Path

import pytest

from pickllm import ConfigError, LearningAutomaton, QLearning, Reward
from pickllm.replay import LatencyModel, Loaded
from pickllm.replay.engine import Strategy, Table, model_means, run_sessions, tables
from pickllm.replay.experiment import MIXED, Estimate, run_experiment
from pickllm.replay.summary import comparisons, format_summary

ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)


def table(rows: int = 10, name: str = "ctx") -> Table:
    """ "big": always right, 1 cent, 4 s + 0.5 s per row index (so rows differ).
    "small": right on even rows, 0.01 cent, 0.5 s."""
    accuracy = array("d", [x for r in range(rows) for x in (1.0, 1.0 if r % 2 == 0 else 0.0)])
    return Table(
        name,
        ("big", "small"),
        accuracy,
        array("d", [0.01, 0.0001] * rows),
        array("d", [x for r in range(rows) for x in (4.0 + 0.5 * r, 0.5)]),
    )


def test_fixed_strategy_sums_are_exact() -> None:
    (s,) = run_sessions([table()], ACCURACY_ONLY, Strategy.fixed(1, "small"), 10, [4])
    # Ten queries from a ten-row table are one full shuffle: every row exactly once.
    assert s.accuracy == 5.0
    assert s.cost == pytest.approx(10 * 0.0001)
    assert s.mean_latency == 0.5
    assert s.best_fixed_reward == 10.0  # "big" is the best fixed model, always right
    assert s.random_reward == 7.5
    assert s.regret == 5.0
    assert s.gap_closed == pytest.approx((5.0 - 7.5) / (10.0 - 7.5))
    assert s.picks == (0, 10)
    assert s.converged == ()


def test_sessions_are_deterministic_and_identical_across_strategies() -> None:
    seeds = list(range(5))
    strategies = [
        Strategy.random(),
        Strategy.round_robin(),
        Strategy.oracle(),
        Strategy.learner(LearningAutomaton(0.2)),
        Strategy.learner(QLearning(0.2)),
    ]
    tables_ = [table(7, "a"), table(9, "b")]
    runs = {s.label: run_sessions(tables_, Reward(), s, 25, seeds) for s in strategies}
    again = {s.label: run_sessions(tables_, Reward(), s, 25, seeds) for s in strategies}
    assert runs == again
    # The queries drawn depend only on the seed: every strategy faces the same rows.
    reference = [s.best_fixed_reward for s in runs["random"]]
    for sessions in runs.values():
        assert [s.best_fixed_reward for s in sessions] == reference
        assert [s.random_reward for s in sessions] == [r.random_reward for r in runs["random"]]
    assert len({s.reward for s in runs["oracle"]}) > 1, "seeds give different sessions"


def test_oracle_bounds_best_fixed_and_learners_report_convergence() -> None:
    for s in run_sessions([table()], Reward(), Strategy.oracle(), 50, range(10)):
        assert s.reward >= s.best_fixed_reward - 1e-12
    # Learning rate 1 and reward 1 on the first query (every answer is right and free):
    # converged at query 1.
    right = Table(
        "r", ("a", "b"), array("d", [1.0] * 6), array("d", [0.0] * 6), array("d", [0.0] * 6)
    )
    fast = Strategy.learner(LearningAutomaton(1.0))
    for s in run_sessions([right], ACCURACY_ONLY, fast, 5, range(10)):
        assert s.converged[0] is not None
        assert s.converged[0][0] == 1


def test_per_context_and_global_learners_keep_one_learner_each() -> None:
    learner = Strategy.learner(LearningAutomaton(0.1))
    glob = Strategy.learner(LearningAutomaton(0.1), per_context=False)
    assert glob.label.endswith("global")
    (per,) = run_sessions([table(5, "a"), table(5, "b")], Reward(), learner, 20, [0])
    (one,) = run_sessions([table(5, "a"), table(5, "b")], Reward(), glob, 20, [0])
    assert (len(per.converged), len(one.converged)) == (2, 1)


def test_bad_tables_and_arguments_are_clear_errors() -> None:
    nan_table = Table("x", ("a",), array("d", [math.nan]), array("d", [0.0]), array("d", [0.0]))
    with pytest.raises(ConfigError, match=r"table cell \(query 0, model 0\): accuracy"):
        run_sessions([nan_table], Reward(), Strategy.random(), 5, [0])
    with pytest.raises(ConfigError, match="queries"):
        run_sessions([table()], Reward(), Strategy.random(), 0, [0])
    with pytest.raises(ConfigError, match="fixed model"):
        run_sessions([table()], Reward(), Strategy.fixed(5, "none"), 5, [0])
    other = Table(
        "y", ("a", "b", "c"), array("d", [1.0] * 3), array("d", [0.0] * 3), array("d", [0.0] * 3)
    )
    with pytest.raises(ConfigError, match="same pool"):
        run_sessions([table(), other], Reward(), Strategy.random(), 5, [0])


def test_model_means() -> None:
    big, small = model_means(table(), ACCURACY_ONLY)
    assert (big.model, big.accuracy, big.latency, big.reward) == ("big", 1.0, 6.25, 1.0)
    assert big.cost == pytest.approx(0.01)
    assert (small.accuracy, small.reward) == (0.5, 0.5)


def test_estimate_is_a_mean_with_a_normal_interval() -> None:
    values = [1.0, 2.0, 3.0, 4.0, math.nan]
    e = Estimate.of(values)
    half = 1.96 * statistics.stdev([1.0, 2.0, 3.0, 4.0]) / 2
    assert (e.mean, e.n) == (2.5, 4)
    assert (e.low, e.high) == pytest.approx((2.5 - half, 2.5 + half))
    assert Estimate.of([math.nan]).n == 0
    assert Estimate.of([3.0]) == Estimate(3.0, 3.0, 3.0, 1)


def test_experiment_metrics_on_a_hand_built_pool() -> None:
    exp = run_experiment([table(10, "a"), table(12, "b")], ACCURACY_ONLY, sessions=30, queries=40)
    pooled = {r.label: r for r in exp.pooled()}
    best = pooled["best fixed"].metrics
    assert best["regret"].mean == 0.0
    assert best["gap_closed"].mean == 1.0
    assert best["mean_accuracy"].mean == 1.0
    assert pooled["most expensive"].picks == {"big": 1.0, "small": 0.0}
    assert pooled["cheapest"].metrics["cost"].mean == pytest.approx(40 * 0.0001)
    assert pooled["random"].metrics["converged"].n == 0  # baselines do not converge
    fast = pooled["automaton lr=0.3"].metrics
    assert 0.5 < fast["converged"].mean <= 1.0
    assert 1 <= fast["queries_to_convergence"].mean <= 40
    assert 0.0 <= fast["converged_to_best"].mean <= 1.0
    assert {r.scope for r in exp.results} == {"a", "b", MIXED}
    assert len(exp.traces["automaton lr=0.3"]) == 40
    for row in exp.traces["automaton lr=0.3"]:
        assert sum(row) == pytest.approx(1.0)
    text = format_summary(exp)
    assert "best fixed" in text
    assert "global" in text
    saved = comparisons(exp)["automaton lr=0.1"]
    assert saved["cost_saved_vs_most_expensive"] == pytest.approx(
        1
        - pooled["automaton lr=0.1"].metrics["cost"].mean
        / pooled["most expensive"].metrics["cost"].mean
    )


def test_learners_beat_random_on_real_routerbench_sessions(
    routerbench: Loaded, latency_model: LatencyModel
) -> None:
    """The paper's 4-model pool on the real data. Pooled over 3 contexts x 100 sessions the 95%
    intervals of mean reward are about +-0.003 wide while the learner's lead over random is
    about 0.03 (from runs of docs/results.md), so the intervals cannot overlap by chance."""
    pool = [
        "gpt-4-1106-preview",
        "mistralai/mixtral-8x7b-chat",
        "meta/llama-2-70b-chat",
        "mistralai/mistral-7b-chat",
    ]
    outcomes = latency_model.apply(routerbench.outcomes.select(models=pool), seed=0)
    exp = run_experiment(tables(outcomes), Reward(), sessions=100, queries=200, mixed=[])
    pooled = {r.label: r.metrics["mean_reward"] for r in exp.pooled()}
    assert pooled["automaton lr=0.1"].low > pooled["random"].high
    assert pooled["oracle"].low > pooled["best fixed"].high
    assert pooled["best fixed"].low > pooled["automaton lr=0.1"].high


def test_shipped_scenario_is_what_the_build_script_makes(shared_data: Path) -> None:
    """python/pickllm/replay/scenarios/default.json is regenerated by the command it cites."""
    import importlib.util
    import io
    import json
    from contextlib import redirect_stdout

    from conftest import REPO_ROOT

    spec = importlib.util.spec_from_file_location("build", REPO_ROOT / "scripts/build_scenario.py")
    assert spec is not None
    assert spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    out = io.StringIO()
    with redirect_stdout(out):
        build.main(shared_data)
    shipped = REPO_ROOT / "python/pickllm/replay/scenarios/default.json"
    assert json.loads(out.getvalue()) == json.loads(shipped.read_text())


def test_core_returns_typed_sessions_read_from_float64_buffers() -> None:
    import json

    from pickllm import _core

    t = table()
    spec = json.dumps(Strategy.fixed(1, "small").spec)
    reward = json.dumps(ACCURACY_ONLY._core_dict())
    (s,) = _core.replay_sessions(2, [t.columns()], reward, spec, 10, [4])
    assert isinstance(s, _core.ReplaySession)
    assert (s.accuracy, s.picks, s.converged, s.trace) == (5.0, [0, 10], [], [])
    with pytest.raises(AttributeError):
        s.accuracy = 1.0  # type: ignore[misc]
    # The binding reads float64 buffers; a list of floats is refused, not converted cell by cell.
    listed = tuple(list(column) for column in t.columns())
    with pytest.raises(TypeError):
        _core.replay_sessions(2, [listed], reward, spec, 10, [4])  # type: ignore[list-item]
