"""IPS, SNIPS and doubly robust estimates of a fixed model's value from a decision log.

Everything here reads the records as a stream, in two passes: the first (:class:`Survey`) finds
where each model has support and fits the doubly robust reward models; the second
(:class:`FixedModelSums`) adds up each candidate's estimators. Memory depends on the number of
contexts and models, never on the number of records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from pickllm.errors import ConfigError
from pickllm.evaluate.accumulate import IPSSums, Moments, quantile
from pickllm.evaluate.estimators import Estimate
from pickllm.evaluate.reward_model import RewardCells, RewardModel
from pickllm.logs.reader import DecisionRecord

__all__ = [
    "FixedModelSums",
    "Metric",
    "Survey",
    "fixed_model_estimates",
    "unsupported_contexts",
]

#: One estimated quantity of a record (see ``pickllm.evaluate.evaluation.metrics_for``).
Metric = Callable[[DecisionRecord], float]


class Survey:
    """The first pass: records, the logger's own means, each model's support, the smallest
    logging probability (replay's acceptance constant) and the doubly robust reward models,
    cross-fitted on the log's two halves (records of even and odd position)."""

    def __init__(self, models: Sequence[str], metrics: dict[str, Metric]) -> None:
        self.metrics = metrics
        self.records = 0
        self.logger = {name: Moments() for name in metrics}
        #: Metrics whose every value was 0 or 1 (correctness): their intervals use the form of
        #: a proportion's variance (see :mod:`pickllm.evaluate.accumulate`).
        self.binary = dict.fromkeys(metrics, True)
        #: The smallest logging probability of any allowed model in any record.
        self.acceptance = 1.0
        #: Records that gave some allowed model probability 0, and the first one's context and
        #: those models (what makes replay inapplicable).
        self.zero_support = 0
        self.first_zero_support: tuple[str, list[str]] | None = None
        self._allowed: dict[str, set[str]] = {m: set() for m in models}
        self._tried: dict[str, set[str]] = {m: set() for m in models}
        self._never: dict[str, set[str]] = {m: set() for m in models}
        self._cells = [{name: RewardCells() for name in metrics} for _ in range(2)]

    def add(self, record: DecisionRecord, values: dict[str, float] | None = None) -> None:
        """One record; ``values``: its metrics, when the caller computed them already."""
        context, half = record.context, self._cells[self.records % 2]
        self.records += 1
        probabilities = record.logging_probabilities()
        self.acceptance = min(self.acceptance, min(probabilities.values()))
        if self.acceptance <= 0.0 and min(probabilities.values()) <= 0.0:
            self.zero_support += 1
            if self.first_zero_support is None:
                never = sorted(m for m, p in probabilities.items() if p <= 0.0)
                self.first_zero_support = (context, never)
        for name, metric in self.metrics.items():
            value = metric(record) if values is None else values[name]
            self.logger[name].add(value)
            if value != 0.0 and value != 1.0:
                self.binary[name] = False
            half[name].add(context, record.model, value)
        self._tried.setdefault(record.model, set()).add(context)
        for model, p in probabilities.items():
            self._allowed.setdefault(model, set()).add(context)
            if p <= 0.0:
                self._never.setdefault(model, set()).add(context)

    def zero_support_error(self) -> ConfigError | None:
        """Why replay does not apply to this log (a deterministic logger), if it does not."""
        if self.first_zero_support is None:
            return None
        context, never = self.first_zero_support
        return ConfigError(
            "replay needs every allowed model to have a positive logging probability; "
            f"{self.zero_support} of {self.records} logged decisions gave some allowed model "
            f"probability 0 (the first, in context {context!r}: {', '.join(never)}), "
            "as a deterministic logging policy does (a UCB or Q-learning pick without an "
            "exploration floor, or a locked learner): log with exploration, e.g. UCB's "
            "floor (on by default) or uniformly at random, to evaluate learners"
        )

    def ever_allowed(self, model: str) -> bool:
        return bool(self._allowed.get(model))

    def unsupported_contexts(self, model: str) -> list[str]:
        """Contexts where ``model`` was allowed but the logger never chose it, or gave it
        probability 0 in some decision: there the log says nothing about it, and no estimator
        can (its estimate would silently be a guess)."""
        allowed = self._allowed.get(model, set())
        tried = self._tried.get(model, set())
        return sorted((allowed - tried) | self._never.get(model, set()))

    def reward_models(self) -> list[dict[str, RewardModel]]:
        """Per half, per metric: the reward model fitted on the *other* half."""
        fitted = [{name: cells.fit() for name, cells in half.items()} for half in self._cells]
        return [fitted[1], fitted[0]]


class FixedModelSums:
    """The second pass for one fixed model: IPS, SNIPS and DR sums per metric. Records must
    come in the survey's order (the cross-fitting halves are by position)."""

    def __init__(self, model: str, survey: Survey) -> None:
        self.model = model
        self.metrics = survey.metrics
        # Predictions memoized per cell: a handful of contexts and models, a million records.
        self._predictions = [
            {name: _memoized(fitted) for name, fitted in half.items()}
            for half in survey.reward_models()
        ]
        self._weighted = {name: IPSSums() for name in self.metrics}
        self._dr = {name: Moments() for name in self.metrics}
        self._binary = dict(survey.binary)
        self._position = 0

    def add(self, record: DecisionRecord, values: dict[str, float] | None = None) -> None:
        """One record; ``values``: its metrics, when the caller computed them already."""
        model, half = self.model, self._position % 2
        self._position += 1
        # The candidate's distribution: ``model`` when allowed, else the logger's own choice
        # (a decision that excluded it was taken the logger's way).
        target = {model: 1.0} if model in record.allowed else record.logging_probabilities()
        w = target.get(record.model, 0.0) / record.probability
        context = record.context
        for name, metric in self.metrics.items():
            y = metric(record) if values is None else values[name]
            predict = self._predictions[half][name]
            direct = sum(p * predict(context, m) for m, p in target.items())
            self._weighted[name].add(w, y)
            self._dr[name].add(direct + w * (y - predict(context, record.model)))

    def estimates(self) -> tuple[dict[str, dict[str, Estimate]], float]:
        """Per metric, the ``ips``, ``snips`` and ``dr`` estimates; the effective sample size."""
        out = {}
        for name in self.metrics:
            weighted, binary = self._weighted[name], self._binary.get(name, False)
            least = weighted.least_correction_variance() if binary else 0.0
            out[name] = {
                "ips": weighted.ips(binary=binary),
                "snips": weighted.snips(binary=binary),
                "dr": self._dr[name].estimate(
                    quantile=quantile(weighted.effective_size()), least_variance=least
                ),
            }
        return out, next(iter(self._weighted.values())).effective_size()

    def mean_weight(self) -> Estimate:
        """The mean importance weight with its interval (see :meth:`IPSSums.mean_weight`)."""
        return next(iter(self._weighted.values())).mean_weight()


def _memoized(model: RewardModel) -> Callable[[str, str], float]:
    cache: dict[tuple[str, str], float] = {}

    def predict(context: str, name: str) -> float:
        key = (context, name)
        value = cache.get(key)
        if value is None:
            value = cache[key] = model.predict(context, name)
        return value

    return predict


def _survey(records: Iterable[DecisionRecord], metrics: dict[str, Metric]) -> Survey:
    survey = Survey((), metrics)
    for record in records:
        survey.add(record)
    return survey


def unsupported_contexts(records: Iterable[DecisionRecord], model: str) -> list[str]:
    """:meth:`Survey.unsupported_contexts` of ``records``."""
    return _survey(records, {}).unsupported_contexts(model)


def fixed_model_estimates(
    records: Iterable[DecisionRecord],
    model: str,
    metrics: dict[str, Metric],
) -> tuple[dict[str, dict[str, Estimate]], float]:
    """Per metric, the IPS, SNIPS and DR estimates of always choosing ``model``, and the
    effective sample size; ``records`` is read twice (a sequence, or a
    :class:`~pickllm.logs.LogStream`). The DR reward model is cross-fitted on two halves of
    the log (each half's terms use the model fitted on the other), so no record predicts
    itself."""
    sums = FixedModelSums(model, _survey(records, metrics))
    for record in records:
        sums.add(record)
    return sums.estimates()
