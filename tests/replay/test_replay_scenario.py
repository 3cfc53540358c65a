"""The built-in scenario: loading, validation and seeded synthesis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pickllm.replay import DataError
from pickllm.replay.scenario import ModelFigures, Scenario


def test_default_scenario_loads_and_cites_its_sources() -> None:
    scenario = Scenario.default()
    assert len(scenario.models) == 4
    assert set(scenario.contexts) == {"arc-challenge", "mbpp", "winogrande"}
    assert any("RouterBench" in s for s in scenario.sources)
    assert any("llmperf" in s for s in scenario.sources)


def test_outcomes_are_seeded_and_follow_the_figures() -> None:
    scenario = Scenario.default()
    a = scenario.outcomes(rows=2000, seed=3)
    assert a == scenario.outcomes(rows=2000, seed=3)
    assert a != scenario.outcomes(rows=2000, seed=4)
    block = a.context("mbpp")
    m = len(scenario.models)
    for j, model in enumerate(scenario.models):
        figures = scenario.contexts["mbpp"][model]
        hits = [block.accuracy[i] for i in range(j, len(block.accuracy), m)]
        # Bernoulli mean over 2000 draws: sd <= 0.0112, so 0.05 is over 4 sd.
        assert abs(sum(hits) / len(hits) - figures.accuracy) < 0.05
        assert block.cost[j] == figures.cost


def test_malformed_scenarios_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        ModelFigures(accuracy=1.5, cost=0.0, latency_median=1.0, latency_sigma=0.1)
    data = json.loads(
        json.dumps(
            {"name": "x", "description": "", "sources": [], "models": ["a"], "contexts": {"c": {}}}
        )
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="missing"):
        Scenario.load(path)
