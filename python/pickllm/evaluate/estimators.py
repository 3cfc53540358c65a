"""Off-policy estimators of a fixed policy's value from logged decisions, with 95% intervals.

For record ``i`` the logger chose ``a_i`` with probability ``p_i`` and observed ``y_i``; the
candidate would choose it with probability ``pi_i``; ``w_i = pi_i / p_i``.

* IPS: the mean of ``w_i y_i``. Unbiased whenever ``p_i > 0`` wherever ``pi_i > 0``.
* SNIPS: ``sum(w_i y_i) / sum(w_i)``; a little biased (O(1/n)), much less variance, and always
  within the range of the observations. Interval by the delta method.
* DR: the mean of ``dm_i + w_i (y_i - q_i)``, where ``q`` is a reward model, ``dm_i`` its value
  under the candidate and ``q_i`` its prediction for the logged choice. Unbiased if either the
  propensities or the reward model are right; lower variance than IPS when ``q`` is good.

Intervals here are the textbook normal ones: estimate +- 1.96 standard errors of the mean of
the terms (sample standard deviation). The effective sample size ``(sum w)^2 / sum w^2`` says
how many records the estimate is really worth. ``pickllm evaluate`` computes the same
estimators as running sums (:mod:`pickllm.evaluate.accumulate`), with intervals that account
for small effective samples (Student's t, and a proportion's variance for 0/1 metrics).

>>> est = ips([2.0, 0.0, 2.0, 0.0], [1.0, 0.5, 0.0, 1.0])
>>> est.value, round(est.low, 3), round(est.high, 3)
(0.5, -0.48, 1.48)
>>> snips([2.0, 0.0, 2.0, 0.0], [1.0, 0.5, 0.0, 1.0]).value
0.5
>>> effective_sample_size([2.0, 0.0, 2.0, 0.0])
2.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = [
    "Z95",
    "Estimate",
    "doubly_robust",
    "effective_sample_size",
    "ips",
    "mean",
    "snips",
    "t975",
]

#: The two-sided 95% normal quantile.
Z95: Final = 1.959963984540054


# Student's t 97.5% quantiles for 1..30 degrees of freedom.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """Student's t 97.5% quantile (two-sided 95%); a series expansion beyond 30 df."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% confidence interval ``[low, high]``."""

    value: float
    low: float
    high: float

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high


def _normal(value: float, stderr: float) -> Estimate:
    return Estimate(value, value - Z95 * stderr, value + Z95 * stderr)


def _stderr(terms: Sequence[float]) -> float:
    n = len(terms)
    if n < 2:
        return math.inf
    m = math.fsum(terms) / n
    return math.sqrt(math.fsum((t - m) ** 2 for t in terms) / (n - 1) / n)


def mean(terms: Sequence[float]) -> Estimate:
    """The sample mean with a normal 95% interval (the on-policy estimate)."""
    value = math.fsum(terms) / len(terms)
    return _normal(value, _stderr(terms))


def ips(weights: Sequence[float], values: Sequence[float]) -> Estimate:
    """Inverse propensity scoring."""
    return mean([w * y for w, y in zip(weights, values, strict=True)])


def snips(weights: Sequence[float], values: Sequence[float]) -> Estimate:
    """Self-normalized IPS; NaN when every weight is 0."""
    total = math.fsum(weights)
    n = len(weights)
    if total <= 0:
        return Estimate(math.nan, math.nan, math.nan)
    value = math.fsum(w * y for w, y in zip(weights, values, strict=True)) / total
    if n < 2:
        return Estimate(value, -math.inf, math.inf)
    # Delta method: the influence of record i is w_i (y_i - value) / mean(w).
    influence = [w * (y - value) / (total / n) for w, y in zip(weights, values, strict=True)]
    return _normal(value, math.sqrt(math.fsum(x * x for x in influence) / (n - 1) / n))


def doubly_robust(
    weights: Sequence[float],
    values: Sequence[float],
    predicted: Sequence[float],
    direct: Sequence[float],
) -> Estimate:
    """Doubly robust: ``direct[i] + weights[i] * (values[i] - predicted[i])``."""
    return mean(
        [d + w * (y - q) for w, y, q, d in zip(weights, values, predicted, direct, strict=True)]
    )


def effective_sample_size(weights: Sequence[float]) -> float:
    """``(sum w)^2 / sum w^2``: n for equal weights, fewer as the weights spread."""
    squares = math.fsum(w * w for w in weights)
    return math.fsum(weights) ** 2 / squares if squares > 0 else 0.0
