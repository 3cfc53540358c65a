"""The estimators of :mod:`pickllm.evaluate.estimators` as running sums, so that ``evaluate``
reads a log of any length in passes with memory that does not grow with it.

Sums are plain floats: over a million terms of the magnitudes logged (rewards and accuracies
in [0, 1], costs, latencies) their relative rounding error stays near 1e-13, far below any
interval's width; variances come from the sums of squares and are clipped at 0.

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

__all__ = ["IPSSums", "Moments"]


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
        self._sum = 0.0
        self._squares = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self._sum += x
        self._squares += x * x

    def estimate(self) -> Estimate:
        if self.n == 0:
            return Estimate(math.nan, math.nan, math.nan)
        n, total = self.n, self._sum
        value = total / n
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        return _normal(value, (self._squares - total * value) / (n - 1), n)


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

    def ips(self) -> Estimate:
        """The mean of ``w y`` (terms ``w y``: their sum of squares is ``sum w^2 y^2``)."""
        n = self.n
        if n == 0:
            return Estimate(math.nan, math.nan, math.nan)
        total = self._wy
        value = total / n
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        return _normal(value, (self._w2y2 - total * value) / (n - 1), n)

    def snips(self) -> Estimate:
        """``sum w y / sum w`` with its delta-method interval; NaN when every weight is 0."""
        n, total = self.n, self._w
        if total <= 0:
            return Estimate(math.nan, math.nan, math.nan)
        value = self._wy / total
        if n < 2:
            return Estimate(value, -math.inf, math.inf)
        # The influence of record i is w_i (y_i - value) / mean(w); the sum of its squares,
        # expanded so that it needs no second pass.
        spread = self._w2y2 - 2 * value * self._w2y + value * value * self._w2
        influence = spread * (n / total) ** 2
        return _normal(value, influence / (n - 1), n)

    def effective_size(self) -> float:
        """``(sum w)^2 / sum w^2``."""
        squares = self._w2
        return self._w**2 / squares if squares > 0 else 0.0
