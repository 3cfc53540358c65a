"""The estimators of :mod:`pickllm.evaluate.estimators` as running sums, so that ``evaluate``
reads a log of any length in passes with memory that does not grow with it.

Sums are plain floats: over a million terms of the magnitudes logged (rewards and accuracies
in [0, 1], costs, latencies) their relative rounding error stays near 1e-13, far below any
interval's width; variances come from the sums of squares and are clipped at 0.

**Small effective samples.** An estimate that rests on a few heavily weighted records (a model
the logger picks only through its exploration floor: ~5 picks weighing ~300 in 3,000
decisions) gets an interval that accounts for it, rather than one that assumes thousands:

* the quantile is Student's t with ``ESS - 1`` degrees of freedom (rounded down; ``ESS`` the
  effective sample size), not the normal one: 2.09 at an ESS of 20, 1.96 in the limit;
* for a 0/1 metric (every logged value 0 or 1: correctness), whose variance has a known form,
  SNIPS gets the Wilson score interval at the effective sample size (the interval of a
  proportion, which never has width 0), and IPS and DR a variance at least the one 0/1
  outcomes at the Wilson-adjusted estimate ``p`` (never 0 or 1) would give with these weights:
  ``mean(w^2) p - (mean(w) p)^2`` for IPS, ``mean(w^2) p (1 - p)`` for DR's correction. Five
  heavily weighted records that are all correct show no variance; that variance is still there.

Measured in docs/evaluation.md: on logs of the default learner these intervals hold the truth
about 95% of the time at 3,000 decisions, where normal intervals held it 84-91%.

>>> ips = IPSSums()
>>> for w, y in [(2.0, 1.0), (0.0, 0.5), (2.0, 0.0), (0.0, 1.0)]:
...     ips.add(w, y)
>>> est = ips.ips()  # two effective records: Student's t with 1 degree of freedom, 12.7
>>> est.value, round(est.low, 3), round(est.high, 3)
(0.5, -5.853, 6.853)
>>> ips.snips().value, ips.effective_size()
(0.5, 2.0)
"""

from __future__ import annotations

import math

from pickllm.evaluate.estimators import Z95, Estimate, t975

__all__ = ["IPSSums", "Moments", "quantile", "wilson"]


def _normal(value: float, variance: float, n: int, quantile: float = Z95) -> Estimate:
    """``value`` +- ``quantile`` standard errors of a mean of ``n`` terms of ``variance``."""
    if n < 2:
        return Estimate(value, -math.inf, math.inf)
    stderr = math.sqrt(max(variance, 0.0) / n)
    return Estimate(value, value - quantile * stderr, value + quantile * stderr)


def quantile(effective_size: float) -> float:
    """The two-sided 95% quantile for a mean worth ``effective_size`` records: Student's t
    with ``effective_size - 1`` degrees of freedom, rounded down (at least 1)."""
    if not math.isfinite(effective_size):
        return Z95
    return t975(max(1, math.floor(effective_size - 1)))


def wilson(value: float, effective_size: float) -> Estimate:
    """The Wilson score interval of a proportion ``value`` observed over ``effective_size``
    records; its value is the estimate, its bounds the score interval's (inside [0, 1])."""
    n = effective_size
    if not n > 0:
        return Estimate(value, 0.0, 1.0)
    p, z2 = min(max(value, 0.0), 1.0), Z95 * Z95
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return Estimate(value, center - half, center + half)


class Moments:
    """The mean of a stream of terms with its normal 95% interval (as ``estimators.mean``)."""

    __slots__ = ("_squares", "_sum", "n")

    def __init__(self) -> None:
        self.n = 0
        self._sum = 0.0
        self._squares = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self._sum += x
        self._squares += x * x

    def estimate(self, *, quantile: float = Z95, least_variance: float = 0.0) -> Estimate:
        """The mean; its interval uses ``quantile`` and a variance of at least
        ``least_variance`` (see the module docs)."""
        if self.n == 0:
            return Estimate(math.nan, math.nan, math.nan)
        n, total = self.n, self._sum
        value = total / n
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        variance = max((self._squares - total * value) / (n - 1), least_variance)
        return _normal(value, variance, n, quantile)


class IPSSums:
    """The running sums of IPS, SNIPS and the effective sample size of one candidate and one
    metric, fed ``(w, y)``: the importance weight and the observed value of each record."""

    __slots__ = ("_w", "_w2", "_w2y", "_w2y2", "_wy", "n")

    def __init__(self) -> None:
        self.n = 0
        self._w = self._w2 = self._wy = self._w2y = self._w2y2 = 0.0

    def add(self, w: float, y: float) -> None:
        self.n += 1
        if w == 0.0:  # the common case (the logger chose another model): no term but n
            return
        wy = w * y
        self._w += w
        self._w2 += w * w
        self._wy += wy
        self._w2y += w * wy
        self._w2y2 += wy * wy

    def ips(self, *, binary: bool = False) -> Estimate:
        """The mean of ``w y`` (terms ``w y``: their sum of squares is ``sum w^2 y^2``);
        ``binary``: every value is 0 or 1 (see the module docs)."""
        n = self.n
        if n == 0:
            return Estimate(math.nan, math.nan, math.nan)
        total = self._wy
        value = total / n
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        variance = (self._w2y2 - total * value) / (n - 1)
        if binary and self._w > 0:
            p = self.adjusted()
            variance = max(variance, self._w2 / n * p - (self._w / n * p) ** 2)
        return _normal(value, variance, n, quantile(self.effective_size()))

    def snips(self, *, binary: bool = False) -> Estimate:
        """``sum w y / sum w`` with its delta-method interval (``binary``: the Wilson score
        interval at the effective sample size); NaN when every weight is 0."""
        n, total = self.n, self._w
        if total <= 0:
            return Estimate(math.nan, math.nan, math.nan)
        value = self._wy / total
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        if binary:
            return wilson(value, self.effective_size())
        # The influence of record i is w_i (y_i - value) / mean(w); the sum of its squares,
        # expanded so that it needs no second pass.
        spread = self._w2y2 - 2 * value * self._w2y + value * value * self._w2
        influence = spread * (n / total) ** 2
        return _normal(value, influence / (n - 1), n, quantile(self.effective_size()))

    def mean_weight(self) -> Estimate:
        """The mean importance weight with its interval. Whatever the candidate, the weights
        average to 1 in expectation under exact propensities: an interval that misses 1 says
        the log has not yet shown what the candidate would do (a context where its model was
        picked a couple of times stands in for thousands of records), however large the
        effective sample size."""
        n = self.n
        if n < 2:
            return Estimate(math.nan, -math.inf, math.inf)
        value = self._w / n
        variance = (self._w2 - self._w * value) / (n - 1)
        return _normal(value, variance, n, quantile(self.effective_size()))

    def adjusted(self) -> float:
        """The Wilson-adjusted SNIPS estimate of a 0/1 metric: the center of its score
        interval, pulled toward 1/2 by the few records it rests on (never 0 or 1)."""
        interval = wilson(self._wy / self._w, self.effective_size())
        return (interval.low + interval.high) / 2

    def least_correction_variance(self) -> float:
        """For a 0/1 metric, the variance of DR's correction ``w (y - q)`` if ``y`` were 0/1
        outcomes at the adjusted estimate: ``mean(w^2) p (1 - p)`` (0 without weight)."""
        if self._w <= 0 or self.n == 0:
            return 0.0
        p = self.adjusted()
        return self._w2 / self.n * p * (1 - p)

    def effective_size(self) -> float:
        """``(sum w)^2 / sum w^2``."""
        squares = self._w2
        return self._w**2 / squares if squares > 0 else 0.0
