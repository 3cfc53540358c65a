"""PNG figures of a replay experiment (needs matplotlib: ``pip install "pickllm[replay]"``).

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

__all__ = ["write_figures"]


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise OptionalDependencyError(
            'figures need matplotlib: pip install "pickllm[replay]" (or pass --no-figures)'
        ) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def write_figures(experiment: Experiment, out: Path) -> list[Path]:
    """Write the three figures into ``out``; returns their paths."""
    plt = _pyplot()
    out.mkdir(parents=True, exist_ok=True)
    paths = [
        _convergence(plt, experiment, out / "convergence.png"),
        _cost_latency(plt, experiment, out / "cost_latency.png"),
        _cost_accuracy(plt, experiment, out / "cost_accuracy.png"),
    ]
    plt.close("all")
    return paths


def _convergence(plt: Any, experiment: Experiment, path: Path) -> Path:
    traces = experiment.traces
    fig, axes = plt.subplots(1, len(traces), figsize=(4 * len(traces), 3.4), sharey=True)
    axes = axes if len(traces) > 1 else [axes]
    for ax, (label, trace) in zip(axes, traces.items(), strict=True):
        for j, model in enumerate(experiment.models):
            ax.plot(range(1, len(trace) + 1), [row[j] for row in trace], label=model)
        ax.set_title(label)
        ax.set_xlabel("query")
        ax.set_ylim(0, 1)
    axes[0].set_ylabel("selection probability")
    axes[-1].legend(fontsize=7, loc="center right")
    fig.suptitle(
        f"Learning automaton, one session (seed {experiment.seed}) on {experiment.trace_context}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _cost_latency(plt: Any, experiment: Experiment, path: Path) -> Path:
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
    fig.savefig(path, dpi=120)
    return path


def _cost_accuracy(plt: Any, experiment: Experiment, path: Path) -> Path:
    """Every point gets its own colour and marker and is named in a legend beside the axes:
    labels written next to points overlap wherever policies land close together."""
    points: list[tuple[str, float, float, str]] = []
    for r in experiment.pooled():
        cost = r.metrics["cost"].mean / experiment.queries
        points.append((r.label, cost, r.metrics["mean_accuracy"].mean, "o" if r.learns else "s"))
    for j, model in enumerate(experiment.models):
        rows = [means[j] for means in experiment.model_means.values()]
        cost = sum(float(m["cost"]) for m in rows) / len(rows)
        accuracy = sum(float(m["accuracy"]) for m in rows) / len(rows)
        points.append((f"model: {model}", cost, accuracy, "*"))
    colours = plt.get_cmap("tab20").colors
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for i, (label, cost, accuracy, marker) in enumerate(points):
        ax.scatter(
            cost,
            accuracy,
            marker=marker,
            s=110 if marker == "*" else 45,
            color=colours[i % len(colours)],
            edgecolors="black",
            linewidths=0.5,
            label=label,
            zorder=3,
        )
    ax.set_xscale("log" if _spans_decades(ax) else "linear")
    ax.set_xlabel("mean cost per query (USD)")
    ax.set_ylabel("mean accuracy")
    ax.set_title("Cost against accuracy: learners (dots), baselines (squares), models (stars)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def _spans_decades(ax: Any) -> bool:
    low, high = ax.dataLim.intervalx
    return bool(low > 0 and high / low > 30 and math.isfinite(high / low))
