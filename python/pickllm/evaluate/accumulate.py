"""The estimators of :mod:`pickllm.evaluate.estimators` as running sums, so that ``evaluate``
reads a log of any length in passes with memory that does not grow with it.

Sums are compensated (Neumaier), so a million terms add up as precisely as ``math.fsum`` for
practical purposes; variances come from the sums of squares and are clipped at 0.

>>> ips = IPSSums()
>>> for w, y in [(2.0, 1.0), (0.0, 0.5), (2.0, 0.0), (0.0, 1.0)]:
...     ips.add(w, y)
>>> est = ips.ips()
>>> est.value, round(est.low, 3), round(est.high, 3)
(0.5, -0.48, 1.48)
>>> ips.snips().value, ips.effective_size()
(0.5, 2.0)
"""

from __future__ import annotations

import math

from pickllm.evaluate.estimators import Z95, Estimate

__all__ = ["IPSSums", "Moments", "Sum"]


class Sum:
    """A compensated running sum (Neumaier's improvement of Kahan's)."""

    __slots__ = ("_compensation", "_total")

    def __init__(self) -> None:
        self._total = 0.0
        self._compensation = 0.0

    def add(self, x: float) -> None:
        total = self._total + x
        if abs(self._total) >= abs(x):
            self._compensation += (self._total - total) + x
        else:
            self._compensation += (x - total) + self._total
        self._total = total

    @property
    def value(self) -> float:
        return self._total + self._compensation


def _normal(value: float, variance: float, n: int) -> Estimate:
    """``value`` +- 1.96 standard errors of a mean of ``n`` terms of sample ``variance``."""
    if n < 2:
        return Estimate(value, -math.inf, math.inf)
    stderr = math.sqrt(max(variance, 0.0) / n)
    return Estimate(value, value - Z95 * stderr, value + Z95 * stderr)


class Moments:
    """The mean of a stream of terms with its normal 95% interval (as ``estimators.mean``)."""

    __slots__ = ("_squares", "_sum", "n")

    def __init__(self) -> None:
        self.n = 0
        self._sum = Sum()
        self._squares = Sum()

    def add(self, x: float) -> None:
        self.n += 1
        self._sum.add(x)
        self._squares.add(x * x)

    def estimate(self) -> Estimate:
        if self.n == 0:
            return Estimate(math.nan, math.nan, math.nan)
        n, total = self.n, self._sum.value
        value = total / n
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        return _normal(value, (self._squares.value - total * value) / (n - 1), n)


class IPSSums:
    """The running sums of IPS, SNIPS and the effective sample size of one candidate and one
    metric, fed ``(w, y)``: the importance weight and the observed value of each record."""

    __slots__ = ("_w", "_w2", "_w2y", "_w2y2", "_wy", "n")

    def __init__(self) -> None:
        self.n = 0
        self._w, self._w2, self._wy, self._w2y, self._w2y2 = Sum(), Sum(), Sum(), Sum(), Sum()

    def add(self, w: float, y: float) -> None:
        self.n += 1
        if w == 0.0:  # the common case (the logger chose another model): no term but n
            return
        wy = w * y
        self._w.add(w)
        self._w2.add(w * w)
        self._wy.add(wy)
        self._w2y.add(w * wy)
        self._w2y2.add(wy * wy)

    def ips(self) -> Estimate:
        """The mean of ``w y`` (terms ``w y``: their sum of squares is ``sum w^2 y^2``)."""
        n = self.n
        if n == 0:
            return Estimate(math.nan, math.nan, math.nan)
        total = self._wy.value
        value = total / n
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        return _normal(value, (self._w2y2.value - total * value) / (n - 1), n)

    def snips(self) -> Estimate:
        """``sum w y / sum w`` with its delta-method interval; NaN when every weight is 0."""
        n, total = self.n, self._w.value
        if total <= 0:
            return Estimate(math.nan, math.nan, math.nan)
        value = self._wy.value / total
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        # The influence of record i is w_i (y_i - value) / mean(w); the sum of its squares,
        # expanded so that it needs no second pass.
        spread = self._w2y2.value - 2 * value * self._w2y.value + value * value * self._w2.value
        influence = spread * (n / total) ** 2
        return _normal(value, influence / (n - 1), n)

    def effective_size(self) -> float:
        """``(sum w)^2 / sum w^2``."""
        squares = self._w2.value
        return self._w.value**2 / squares if squares > 0 else 0.0
