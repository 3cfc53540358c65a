"""`pickllm evaluate --figure`: a PNG of each candidate's estimate and interval, the table's
numbers, whose labels never overlap (checked on the drawn text's extents)."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from pickllm import QLearning, Reward, Router
from pickllm.evaluate import Estimate, Evaluation, PolicyEstimate, evaluate
from pickllm.evaluate.figure import PANELS, write_figure

POOL = ["big", "mid", "small"]
UNIFORM = QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("log")
    with Router(POOL, policy=UNIFORM, seed=4, decision_log=folder) as router:
        for i in range(1_500):
            d = router.select(f"c{i % 3}")
            router.feedback(d, accuracy=float(d.model != "small"), cost=0.01, latency=0.2)
    return folder


def _capture(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures write_figure draws, kept open for inspection."""
    figures: list[Any] = []
    real = plt.subplots

    def subplots(*args: Any, **kwargs: Any) -> Any:
        fig, axes = real(*args, **kwargs)
        figures.append(fig)
        return fig, axes

    monkeypatch.setattr(plt, "subplots", subplots)
    monkeypatch.setattr(plt, "close", lambda *_: None)
    return figures


def _overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _check_labels(fig: Any) -> list[str]:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axes = fig.axes
    labels = [t for t in axes[0].get_yticklabels() if t.get_text()]
    boxes = [t.get_window_extent(renderer) for t in labels]
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b), "two row labels overlap"
    panels = [ax.get_window_extent(renderer) for ax in axes]
    for box in boxes:
        for panel in panels:
            assert not _overlap(box, panel), "a row label runs into a panel"
    for ax in axes:  # the x tick labels of one panel do not run into each other
        ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text()]
        for a, b in itertools.combinations(ticks, 2):
            assert not _overlap(a, b), "two x tick labels overlap"
    titles = [ax.title.get_window_extent(renderer) for ax in axes]
    for a, b in itertools.combinations(titles, 2):
        assert not _overlap(a, b), "two panel titles overlap"
    return [t.get_text() for t in labels]


def test_the_figure_shows_the_tables_numbers_without_overlaps(
    log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = evaluate(log, [*POOL, "q_learning"], horizon=40)
    figures = _capture(monkeypatch)
    path = write_figure(result, tmp_path / "estimates.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = figures
    labels = _check_labels(fig)
    assert labels == [
        "logging policy (on-policy)",
        "big (DR)",
        "mid (DR)",
        "small (DR)",
        "q_learning [h=40] (replay)",
    ]
    # Each panel's diamonds are the table's estimates, row by row (top row first).
    for ax, (metric, _) in zip(fig.axes, PANELS, strict=True):
        points = [
            (line.get_ydata()[0], line.get_xdata()[0])
            for line in ax.get_lines()
            if line.get_marker() == "D"
        ]
        values = [y_x[1] for y_x in sorted(points, key=lambda p: -p[0])]
        expected = [p.best(metric) for p in result.policies]
        assert values == pytest.approx([e.value for e in expected if e is not None])


def test_long_labels_and_many_rows_never_overlap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    estimate = Estimate(0.5, 0.4, 0.6)
    unbounded = Estimate(0.7, -math.inf, math.inf)
    policies = [
        PolicyEstimate(
            f'learning_automaton(learning_rate={i / 100}, threshold=0.999, prior="x" * {i})',
            "learner" if i % 2 else "fixed",
            {
                m: {"replay" if i % 2 else "dr": unbounded if i == 3 else estimate}
                for m, _ in PANELS
            },
        )
        for i in range(40)
    ]
    policies.append(PolicyEstimate("never allowed", "fixed", warning="never allowed"))
    result = Evaluation(1000, Reward(), policies, "a log")
    figures = _capture(monkeypatch)
    write_figure(result, tmp_path / "many.png")
    (fig,) = figures
    assert len(_check_labels(fig)) == 41


def test_the_cli_writes_the_figure_beside_the_table(log: Path, tmp_path: Path) -> None:
    out = tmp_path / "figures" / "estimates.png"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pickllm",
            "evaluate",
            "--log",
            str(log),
            "--policy",
            "big",
            "--figure",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert f"wrote {out}" in done.stderr
    assert "big" in done.stdout
