"""The results of a replay experiment as text tables for the terminal."""

from __future__ import annotations

import math

from pickllm.replay.experiment import METRICS, MIXED, Estimate, Experiment, PolicyResult

__all__ = ["comparisons", "format_summary", "legend"]


_COLUMNS = (
    ("cost", "cost/session", "{:.4f}"),
    ("mean_latency", "latency s", "{:.2f}"),
    ("mean_accuracy", "accuracy", "{:.3f}"),
    ("mean_reward", "reward", "{:.3f}"),
    ("regret", "regret", "{:.1f}"),
    ("gap_closed", "gap closed", "{:.2f}"),
    ("converged", "converged", "{:.2f}"),
    ("queries_to_convergence", "queries", "{:.0f}"),
    ("converged_to_best", "to best", "{:.2f}"),
)


def _cell(estimate: Estimate, pattern: str) -> str:
    if estimate.n == 0 or math.isnan(estimate.mean):
        return "-"
    half = (estimate.high - estimate.low) / 2
    text = pattern.format(estimate.mean)
    return text if half == 0 else f"{text}±{pattern.format(half)}"


def _table(rows: list[PolicyResult]) -> str:
    header = ["policy", *(title for _, title, _ in _COLUMNS)]
    body = [
        [r.label, *(_cell(r.metrics[name], pattern) for name, _, pattern in _COLUMNS)] for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def _saved(value: float, baseline: float) -> float:
    """The share of ``baseline`` saved; NaN when there is none to save (free or instant data)."""
    return 1 - value / baseline if baseline > 0 else math.nan


def _percent(share: float) -> str:
    return "     -" if math.isnan(share) else f"{share:6.1%}"


def legend() -> str:
    """What each column of the table means (from the metrics' own descriptions)."""
    lines = [f"  {title:>12}: {METRICS[name]}" for name, title, _ in _COLUMNS]
    return "\n".join(["columns (± is the 95% interval over sessions):", *lines])


def comparisons(experiment: Experiment) -> dict[str, dict[str, float]]:
    """Per learner, pooled over contexts: session cost saved against always using the most
    expensive model, and mean latency saved against random choice (the paper's two claims)."""
    pooled = {r.label: r for r in experiment.pooled()}
    expensive = pooled["most expensive"].metrics["cost"].mean
    random_latency = pooled["random"].metrics["mean_latency"].mean
    return {
        r.label: {
            "cost_saved_vs_most_expensive": _saved(r.metrics["cost"].mean, expensive),
            "latency_saved_vs_random": _saved(r.metrics["mean_latency"].mean, random_latency),
        }
        for r in pooled.values()
        if r.learns
    }


def format_summary(experiment: Experiment) -> str:
    """Pooled results, the mixed-context run, and the comparisons with the paper's claims."""
    contexts = ", ".join(experiment.model_means)
    parts = [
        f"{experiment.sessions} sessions x {experiment.queries} queries per context "
        f"({contexts}); models: {', '.join(experiment.models)}",
        "",
        "Pooled over contexts (mean ± 95% interval over sessions):",
        _table(experiment.pooled()),
        "",
        legend(),
    ]
    mixed = [r for r in experiment.results if r.scope == MIXED]
    if mixed:
        parts += [
            "",
            "Mixed contexts, per-context learners against one global learner:",
            _table(mixed),
        ]
    parts += [
        "",
        "Against the paper's claims (about 60% cost saved vs the expensive model, "
        "52% latency saved vs random):",
    ]
    for label, c in comparisons(experiment).items():
        parts.append(
            f"  {label:36s} cost saved vs most expensive "
            f"{_percent(c['cost_saved_vs_most_expensive'])}"
            f"   latency saved vs random {_percent(c['latency_saved_vs_random'])}"
        )
    return "\n".join(parts)
