"""Built-in scenarios: per-model, per-context figures from published measurements, turned into
synthetic recorded outcomes so that ``pickllm replay`` runs with no data, network or API key.

A scenario file (JSON) gives, for each context and each model of its pool: the mean accuracy, the
mean cost per query (USD) and the latency distribution (log-normal: median and sigma of the log)
of that model on that context, and cites where the figures come from. :meth:`Scenario.outcomes`
draws ``rows`` queries per context: accuracy Bernoulli(mean), cost the mean cost, latency a
log-normal draw, all from a seeded generator.

The default scenario is computed from RouterBench (accuracy, cost) and llmperf (latency) by
``python scripts/build_scenario.py ../shared/data``; see that script for the exact aggregation.

>>> scenario = Scenario.default()
>>> len(scenario.models), len(scenario.contexts)
(4, 3)
>>> outcomes = scenario.outcomes(rows=10, seed=1)
>>> outcomes.n_queries
30
"""

from __future__ import annotations

import json
import math
import random
from array import array
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pickllm.replay.errors import DataError
from pickllm.replay.outcomes import ContextOutcomes, Outcomes

__all__ = ["ModelFigures", "Scenario"]


@dataclass(frozen=True)
class ModelFigures:
    """One model on one context."""

    accuracy: float
    cost: float
    latency_median: float
    latency_sigma: float

    def __post_init__(self) -> None:
        checks = (
            0.0 <= self.accuracy <= 1.0,
            math.isfinite(self.cost) and self.cost >= 0.0,
            math.isfinite(self.latency_median) and self.latency_median > 0.0,
            math.isfinite(self.latency_sigma) and self.latency_sigma >= 0.0,
        )
        if not all(checks):
            raise DataError(f"invalid model figures {self}")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    sources: tuple[str, ...]
    models: tuple[str, ...]
    #: context -> model -> figures
    contexts: dict[str, dict[str, ModelFigures]]

    @classmethod
    def default(cls) -> Scenario:
        """The scenario shipped with pickllm (4 models, 3 contexts; see the module docs)."""
        text = resources.files("pickllm.replay").joinpath("scenarios/default.json").read_text()
        return cls.from_json(json.loads(text), "default.json")

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        return cls.from_json(json.loads(Path(path).read_text()), str(path))

    @classmethod
    def from_json(cls, data: dict[str, Any], origin: str = "scenario") -> Scenario:
        try:
            models = tuple(data["models"])
            contexts = {
                context: {model: ModelFigures(**figures[model]) for model in models}
                for context, figures in data["contexts"].items()
            }
            return cls(data["name"], data["description"], tuple(data["sources"]), models, contexts)
        except (KeyError, TypeError) as error:
            raise DataError(
                f"malformed scenario: missing or wrong field {error}", path=origin
            ) from None

    def outcomes(self, rows: int = 1000, seed: int = 0) -> Outcomes:
        """``rows`` synthetic queries per context drawn from the figures (seeded)."""
        rng = random.Random(seed)
        blocks = []
        for context, figures in self.contexts.items():
            accuracy, cost, latency = array("d"), array("d"), array("d")
            for _ in range(rows):
                for model in self.models:
                    f = figures[model]
                    accuracy.append(1.0 if rng.random() < f.accuracy else 0.0)
                    cost.append(f.cost)
                    latency.append(f.latency_median * math.exp(f.latency_sigma * rng.gauss()))
            cells = rows * len(self.models)
            blocks.append(
                ContextOutcomes(
                    name=context,
                    query_ids=tuple(f"{context}-{i}" for i in range(rows)),
                    n_models=len(self.models),
                    accuracy=accuracy,
                    cost=cost,
                    latency=latency,
                    output_tokens=array("d", [math.nan] * cells),
                    mask=array("B", [1] * cells),
                )
            )
        return Outcomes(models=self.models, contexts=tuple(blocks))
