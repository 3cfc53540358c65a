"""The table ``pickllm evaluate`` prints, with a legend of its columns."""

from __future__ import annotations

import math

from pickllm.evaluate.estimators import Estimate
from pickllm.evaluate.evaluation import Evaluation, PolicyEstimate

__all__ = ["format_evaluation"]

LEGEND = """\
columns: reward, accuracy, cost (USD per query) and latency (s per query): the estimate and its
95% interval; DR (doubly robust) for fixed models, rejection-sampling replay for learners
(mean over sessions of `horizon` decisions from a fresh start), the plain mean for the logging
policy. IPS and SNIPS: the reward by inverse propensity scoring and its self-normalized form.
n: effective sample size (fixed models), accepted records (learners), records (logger); an
estimate with n below 30, importance weights that do not average to 1, or a reward or accuracy
outside [0, 1], is named in a warning (and the command exits with status 3)."""


def _fmt(estimate: Estimate | None, digits: int) -> str:
    if estimate is None or math.isnan(estimate.value):
        return "-"
    half = estimate.half_width
    spread = "inf" if math.isinf(half) else f"{half:.{digits}f}"
    return f"{estimate.value:.{digits}f} ±{spread}"


def _row(p: PolicyEstimate) -> list[str]:
    if p.warning and not p.estimates:
        return [p.label, "-", "-", "-", "-", "-", "-", "-"]
    reward = p.estimates.get("reward", {})
    return [
        p.label if p.kind != "learner" else f"{p.label} [h={p.horizon}]",
        _fmt(p.best("reward"), 3),
        _fmt(reward.get("ips"), 3),
        _fmt(reward.get("snips"), 3),
        _fmt(p.best("accuracy"), 3),
        _fmt(p.best("cost"), 5),
        _fmt(p.best("latency"), 2),
        f"{p.effective_size:.0f}",
    ]


def format_evaluation(evaluation: Evaluation) -> str:
    """The estimates as an aligned text table, warnings below it, then the legend."""
    header = ["policy", "reward", "IPS", "SNIPS", "accuracy", "cost", "latency", "n"]
    rows = [header, *(_row(p) for p in evaluation.policies)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    warnings = [f"warning: {p.label}: {p.warning}" for p in evaluation.policies if p.warning]
    return "\n".join([*lines, *warnings, "", LEGEND])
