"""IPS, SNIPS and doubly robust estimates of a fixed model's value from a decision log."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pickllm.evaluate.estimators import (
    Estimate,
    doubly_robust,
    effective_sample_size,
    ips,
    snips,
)
from pickllm.evaluate.reward_model import RewardModel
from pickllm.logs.reader import DecisionRecord

__all__ = ["Metric", "fixed_model_estimates", "unsupported_contexts"]

#: One estimated quantity of a record (see ``pickllm.evaluate.evaluation.metrics_for``).
Metric = Callable[[DecisionRecord], float]


def unsupported_contexts(records: Sequence[DecisionRecord], model: str) -> list[str]:
    """Contexts where ``model`` was allowed but the logger never chose it, or gave it
    probability 0 in some decision: there the log says nothing about it, and no estimator can
    (its estimate would silently be a guess)."""
    allowed = {r.context for r in records if model in r.allowed}
    tried = {r.context for r in records if r.model == model}
    never = {
        r.context for r in records if model in r.allowed and r.logging_probabilities()[model] <= 0.0
    }
    return sorted((allowed - tried) | never)


def _target(record: DecisionRecord, model: str) -> dict[str, float]:
    """The candidate's distribution for one record: ``model`` when allowed, else the
    logger's own choice (a decision that excluded it was taken the logger's way)."""
    if model in record.allowed:
        return {model: 1.0}
    return record.logging_probabilities()


def fixed_model_estimates(
    records: Sequence[DecisionRecord],
    model: str,
    metrics: dict[str, Metric],
) -> tuple[dict[str, dict[str, Estimate]], float]:
    """Per metric, the IPS, SNIPS and DR estimates of always choosing ``model``, and the
    effective sample size. The DR reward model is cross-fitted on two halves of the log
    (each half's terms use the model fitted on the other), so no record predicts itself."""
    targets = [_target(r, model) for r in records]
    weights = [t.get(r.model, 0.0) / r.probability for r, t in zip(records, targets, strict=True)]
    out: dict[str, dict[str, Estimate]] = {}
    halves = [list(range(0, len(records), 2)), list(range(1, len(records), 2))]
    for name, metric in metrics.items():
        values = [metric(r) for r in records]
        predicted = [0.0] * len(records)
        direct = [0.0] * len(records)
        for half, other in ((halves[0], halves[1]), (halves[1], halves[0])):
            fitted = RewardModel.fit(
                (records[i].context, records[i].model, values[i]) for i in other
            )
            for i in half:
                r = records[i]
                predicted[i] = fitted.predict(r.context, r.model)
                direct[i] = sum(p * fitted.predict(r.context, m) for m, p in targets[i].items())
        out[name] = {
            "ips": ips(weights, values),
            "snips": snips(weights, values),
            "dr": doubly_robust(weights, values, predicted, direct),
        }
    return out, effective_sample_size(weights)
