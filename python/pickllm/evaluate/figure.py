"""The figure of ``pickllm evaluate --figure FILE.png``: each candidate's estimate with its 95%
interval, one panel per quantity (reward, accuracy, cost, latency), the numbers of the table.

One row per candidate, labelled once on the shared vertical axis; the figure grows with the
number of rows and is saved with its labels' full extent, so labels never overlap one another
or the panels. An interval that is unbounded (a single session, a single record) is drawn to
the panel's edge with an open end; a candidate without an estimate says so on its row. Needs
matplotlib (``pip install "pickllm[replay]"``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pickllm.evaluate.evaluation import Evaluation, PolicyEstimate
from pickllm.replay.figures import _pyplot

__all__ = ["write_figure"]

PANELS = (
    ("reward", "reward"),
    ("accuracy", "accuracy"),
    ("cost", "cost (USD / query)"),
    ("latency", "latency (s / query)"),
)
#: Inches per candidate row: room for a 9-point label with a margin.
ROW_HEIGHT = 0.32


def _row_label(policy: PolicyEstimate) -> str:
    """The table's label, and the estimator behind the point."""
    if policy.kind == "learner":
        return f"{policy.label} [h={policy.horizon}] (replay)"
    method = {"fixed": "DR", "logger": "on-policy"}.get(policy.kind)
    return f"{policy.label} ({method})" if method else policy.label


def write_figure(evaluation: Evaluation, path: str | Path) -> Path:
    """Write the figure of ``evaluation`` as a PNG at ``path``; returns the path."""
    plt = _pyplot()
    path = Path(path)
    policies = evaluation.policies
    rows = len(policies)
    fig, axes = plt.subplots(
        1,
        len(PANELS),
        figsize=(3.0 * len(PANELS), 1.2 + ROW_HEIGHT * rows),
        sharey=True,
        squeeze=False,
    )
    axes = axes[0]
    ys = list(range(rows))[::-1]  # the table's order, top to bottom
    for ax, (metric, title) in zip(axes, PANELS, strict=True):
        _panel(ax, policies, metric, ys)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="x", labelsize=8)
    axes[0].set_yticks(ys, [_row_label(p) for p in policies], fontsize=9)
    axes[0].set_ylim(-0.7, rows - 0.3)
    fig.suptitle(
        f"Off-policy estimates with 95% intervals: {evaluation.records} decisions", fontsize=11
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _panel(ax: Any, policies: list[PolicyEstimate], metric: str, ys: list[int]) -> None:
    finite: list[float] = []
    drawn = []
    for policy, y in zip(policies, ys, strict=True):
        estimate = policy.best(metric)
        if estimate is None or math.isnan(estimate.value):
            ax.text(
                0.5,
                y,
                "no estimate",
                transform=ax.get_yaxis_transform(),
                ha="center",
                va="center",
                fontsize=8,
                color="0.5",
            )
            continue
        drawn.append((estimate, y, policy.kind))
        finite += [v for v in (estimate.value, estimate.low, estimate.high) if math.isfinite(v)]
    if not finite:
        return
    low, high = min(finite), max(finite)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 0.1
    left, right = low - pad, high + pad
    for estimate, y, kind in drawn:
        color = {"logger": "black", "fixed": "tab:blue", "learner": "tab:orange"}.get(kind, "gray")
        a = estimate.low if math.isfinite(estimate.low) else left
        b = estimate.high if math.isfinite(estimate.high) else right
        ax.plot([a, b], [y, y], color=color, linewidth=2, solid_capstyle="butt")
        for end, bounded in ((a, math.isfinite(estimate.low)), (b, math.isfinite(estimate.high))):
            ax.plot(
                [end],
                [y],
                marker="|" if bounded else "o",
                markersize=8 if bounded else 4,
                color=color,
                markerfacecolor=color if bounded else "white",
            )
        ax.plot([estimate.value], [y], marker="D", markersize=5, color=color)
    ax.set_xlim(left, right)
