"""The replay figures stay readable with the full 11-model RouterBench pool: every line and
point has its own colour (and every model line its own marker), and no point hides another."""

from __future__ import annotations

import random
from array import array
from itertools import combinations

import pytest

from pickllm import Reward
from pickllm.replay.engine import Table
from pickllm.replay.experiment import Experiment, run_experiment
from pickllm.replay.figures import (
    STACKED,
    convergence_figure,
    cost_accuracy_figure,
    merge_stacked,
    palette,
)

plt = pytest.importorskip("matplotlib.pyplot")

MODELS = tuple(f"model-{i}" for i in range(11))


@pytest.fixture(scope="module")
def experiment() -> Experiment:
    rng = random.Random(3)
    tables = []
    for name in ("a", "b"):
        rows = 40
        accuracy = array("d", (float(rng.random() < 0.3 + 0.05 * j) for _ in range(rows)
                               for j in range(11)))  # fmt: skip
        cost = array("d", (0.0001 * (j + 1) ** 2 for _ in range(rows) for j in range(11)))
        latency = array("d", (0.5 + 0.1 * j for _ in range(rows) for j in range(11)))
        tables.append(Table(name, MODELS, accuracy, cost, latency))
    return run_experiment(tables, Reward(), sessions=3, queries=30, seed=0)


def test_eleven_models_get_eleven_colours_and_markers(experiment: Experiment) -> None:
    figure = convergence_figure(plt, experiment)
    try:
        for ax in figure.axes:
            lines = ax.get_lines()
            assert len(lines) == 11
            assert len({line.get_color() for line in lines}) == 11
            assert len({line.get_marker() for line in lines}) == 11
    finally:
        plt.close(figure)


def test_every_cost_accuracy_point_has_its_own_colour_and_none_is_hidden(
    experiment: Experiment,
) -> None:
    figure = cost_accuracy_figure(plt, experiment)
    try:
        (ax,) = figure.axes
        collections = ax.collections
        # 6 baselines + the learners + 11 models, minus merged ones: more than tab20 holds.
        assert len(collections) > 20
        colours = [tuple(c.get_facecolor()[0]) for c in collections]
        assert len(set(colours)) == len(colours)
        to_axes = ax.transData + ax.transAxes.inverted()
        spots = [tuple(to_axes.transform(c.get_offsets()[0])) for c in collections]
        for (x1, y1), (x2, y2) in combinations(spots, 2):
            assert abs(x1 - x2) > STACKED / 2 or abs(y1 - y2) > STACKED / 2
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        named = sum(label.count("model: ") for label in labels)
        assert named == 11  # a merged model is still named in the legend
    finally:
        plt.close(figure)


def test_palette_never_repeats_up_to_sixty() -> None:
    for count in (1, 10, 11, 25, 60):
        assert len(set(palette(plt, count))) == count


def test_points_on_top_of_each_other_become_one_named_for_both() -> None:
    points = [("cheapest", 0.001, 0.5, "s"), ("x", 0.01, 0.9, "o"), ("model: m", 0.001, 0.5, "*")]
    assert merge_stacked(points, log_x=True) == [
        ("cheapest = model: m", 0.001, 0.5, "s"),
        ("x", 0.01, 0.9, "o"),
    ]
