"""The doubly robust estimator's reward model: per-context, per-model means with shrinkage.

A (context, model) cell with ``n`` observations of mean ``m`` predicts
``(n m + k g) / (n + k)``, where ``g`` is the model's mean over every context (itself shrunk
toward the overall mean the same way): a cell seen rarely leans on the model's global mean, a
cell seen often on its own. ``k`` (``strength``) is how many observations the prior is worth.

Cell means are unbiased for the cell's expected value because pickllm's logging policy depends
on the context only, not on the query within it.

>>> model = RewardModel.fit([("math", "big", 1.0), ("math", "big", 1.0), ("code", "small", 0.0)])
>>> round(model.predict("math", "big"), 4), round(model.predict("code", "big"), 4)
(0.8299, 0.7619)
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["RewardCells", "RewardModel"]


class RewardCells:
    """The sums a :class:`RewardModel` is fitted from, fed one observation at a time."""

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0])
        self._models: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
        self._total = 0.0
        self._count = 0

    def add(self, context: str, model: str, value: float) -> None:
        for bucket in (self._cells[(context, model)], self._models[model]):
            bucket[0] += value
            bucket[1] += 1
        self._total += value
        self._count += 1

    def fit(self, *, strength: float = 5.0) -> RewardModel:
        overall = self._total / self._count if self._count else 0.0
        models = {
            m: (s + strength * overall) / (n + strength) for m, (s, n) in self._models.items()
        }
        cells = {key: (s / n, int(n)) for key, (s, n) in self._cells.items()}
        return RewardModel(cells, models, overall, strength)


@dataclass(frozen=True)
class RewardModel:
    cells: dict[tuple[str, str], tuple[float, int]]
    models: dict[str, float]
    overall: float
    strength: float

    @classmethod
    def fit(
        cls, observations: Iterable[tuple[str, str, float]], *, strength: float = 5.0
    ) -> RewardModel:
        """Fit on ``(context, model, value)`` triples."""
        cells = RewardCells()
        for context, model, value in observations:
            cells.add(context, model, value)
        return cells.fit(strength=strength)

    def predict(self, context: str, model: str) -> float:
        prior = self.models.get(model, self.overall)
        mean, n = self.cells.get((context, model), (0.0, 0))
        value = (n * mean + self.strength * prior) / (n + self.strength)
        return value if math.isfinite(value) else self.overall
