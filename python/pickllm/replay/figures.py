"""PNG figures of a replay experiment (needs matplotlib, the ``replay`` extra).

* ``convergence.png``: each model's selection probability against the query index in one session,
  one panel per learning rate of the automaton (the paper's convergence-speed figure).
* ``cost_latency.png``: session cost and mean latency per policy, with 95% intervals.
* ``cost_accuracy.png``: mean cost per query against mean accuracy for every policy and model.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pickllm.replay.errors import OptionalDependencyError
from pickllm.replay.experiment import Experiment

__all__ = ["merge_stacked", "palette", "write_figures"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise OptionalDependencyError(
            "figures need matplotlib (the replay extra): pip install matplotlib, "
            "or pass --no-figures"
        ) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


#: Line markers, each unlike the others, for telling models apart beyond colour.
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "p", "h", "*")

#: Points closer than this share of the axes' span (in both directions) would hide each other:
#: they are drawn as one marker that the legend names for all of them.
STACKED = 0.015


def palette(plt: Any, count: int) -> list[tuple[float, ...]]:
    """``count`` different colours: tab10's for up to 10 series, else tab20, tab20b and tab20c
    (60 in all) in turn; beyond 60 they repeat."""
    if count <= 10:
        colours = list(plt.get_cmap("tab10").colors)
    else:
        colours = [c for name in ("tab20", "tab20b", "tab20c") for c in plt.get_cmap(name).colors]
    return [tuple(colours[i % len(colours)]) for i in range(count)]


def write_figures(experiment: Experiment, out: Path) -> list[Path]:
    """Write the three figures into ``out``; returns their paths."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in (
        ("convergence.png", convergence_figure),
        ("cost_latency.png", cost_latency_figure),
        ("cost_accuracy.png", cost_accuracy_figure),
    ):
        figure = draw(plt, experiment)
        figure.savefig(out / name, dpi=120)
        paths.append(out / name)
    plt.close("all")
    return paths


def convergence_figure(plt: Any, experiment: Experiment) -> Any:
    """One line per model, each with its own colour and marker (11 models included)."""
    traces = experiment.traces
    fig, axes = plt.subplots(1, len(traces), figsize=(4 * len(traces), 3.4), sharey=True)
    axes = axes if len(traces) > 1 else [axes]
    colours = palette(plt, len(experiment.models))
    for ax, (label, trace) in zip(axes, traces.items(), strict=True):
        for j, model in enumerate(experiment.models):
            ax.plot(
                range(1, len(trace) + 1),
                [row[j] for row in trace],
                label=model,
                color=colours[j],
                marker=MARKERS[j % len(MARKERS)],
                markevery=max(1, len(trace) // 8),
                markersize=4,
                linewidth=1.2,
            )
        ax.set_title(label)
        ax.set_xlabel("query")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("selection probability")
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5), borderaxespad=0)
    fig.suptitle(
        f"Learning automaton, one session (seed {experiment.seed}) on {experiment.trace_context}"
    )
    fig.tight_layout()
    return fig


def cost_latency_figure(plt: Any, experiment: Experiment) -> Any:
    pooled = experiment.pooled()
    labels = [r.label for r in pooled]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * len(labels) + 1.5), sharey=True)
    for ax, metric, title in (
        (axes[0], "cost", "session cost (USD)"),
        (axes[1], "mean_latency", "mean latency (s)"),
    ):
        estimates = [r.metrics[metric] for r in pooled]
        colors = ["tab:blue" if r.learns else "tab:gray" for r in pooled]
        ax.barh(
            labels,
            [e.mean for e in estimates],
            xerr=[[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]],
            color=colors,
        )
        ax.set_title(title)
    axes[0].invert_yaxis()  # shared: first policy on top; inverting both would undo it
    fig.suptitle(
        f"{experiment.sessions} sessions of {experiment.queries} queries per context, "
        "pooled over contexts (blue: learners)"
    )
    fig.tight_layout()
    return fig


def cost_accuracy_figure(plt: Any, experiment: Experiment) -> Any:
    """Every point gets its own colour and is named in a legend beside the axes (labels written
    next to points overlap wherever policies land close together). Points that would be drawn
    on top of each other (the "cheapest" baseline and the cheapest model, say) are one marker
    named for all of them, so that none hides another."""
    points: list[tuple[str, float, float, str]] = []
    for r in experiment.pooled():
        cost = r.metrics["cost"].mean / experiment.queries
        points.append((r.label, cost, r.metrics["mean_accuracy"].mean, "o" if r.learns else "s"))
    for j, model in enumerate(experiment.models):
        rows = [means[j] for means in experiment.model_means.values()]
        cost = sum(float(m["cost"]) for m in rows) / len(rows)
        accuracy = sum(float(m["accuracy"]) for m in rows) / len(rows)
        points.append((f"model: {model}", cost, accuracy, "*"))
    log_x = _spans_decades([cost for _, cost, _, _ in points])
    merged = merge_stacked(points, log_x=log_x)
    colours = palette(plt, len(merged))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for colour, (label, cost, accuracy, marker) in zip(colours, merged, strict=True):
        ax.scatter(
            cost,
            accuracy,
            marker=marker,
            s=110 if marker == "*" else 45,
            color=colour,
            edgecolors="black",
            linewidths=0.5,
            label=label,
            zorder=3,
        )
    ax.set_xscale("log" if log_x else "linear")
    ax.set_xlabel("mean cost per query (USD)")
    ax.set_ylabel("mean accuracy")
    ax.set_title("Cost against accuracy: learners (dots), baselines (squares), models (stars)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def merge_stacked(
    points: list[tuple[str, float, float, str]], *, log_x: bool
) -> list[tuple[str, float, float, str]]:
    """Points within STACKED of the axes' span of an earlier point, in both directions, join
    it: one marker (the earlier point's) whose label names them all, joined by " = ".

    >>> merge_stacked([("cheapest", 1.0, 0.5, "s"), ("model: m", 1.0, 0.5, "*"),
    ...                ("oracle", 2.0, 0.9, "s")], log_x=False)
    [('cheapest = model: m', 1.0, 0.5, 's'), ('oracle', 2.0, 0.9, 's')]
    """

    def x_of(cost: float) -> float:
        return math.log10(cost) if log_x and cost > 0 else cost

    xs = [x_of(cost) for _, cost, _, _ in points]
    ys = [accuracy for _, _, accuracy, _ in points]
    x_span = (max(xs) - min(xs)) or 1.0
    y_span = (max(ys) - min(ys)) or 1.0
    merged: list[tuple[str, float, float, str]] = []
    anchors: list[tuple[float, float]] = []
    for (label, cost, accuracy, marker), x, y in zip(points, xs, ys, strict=True):
        for i, (ax_, ay) in enumerate(anchors):
            if abs(x - ax_) <= STACKED * x_span and abs(y - ay) <= STACKED * y_span:
                first = merged[i]
                merged[i] = (f"{first[0]} = {label}", first[1], first[2], first[3])
                break
        else:
            merged.append((label, cost, accuracy, marker))
            anchors.append((x, y))
    return merged


def _spans_decades(costs: list[float]) -> bool:
    positive = [c for c in costs if c > 0 and math.isfinite(c)]
    return bool(positive) and len(positive) == len(costs) and max(positive) / min(positive) > 30
