"""Warm start: what evaluated prompts say about each (context, model), as bounded evidence.

:meth:`pickllm.Router.warm_start` turns outcomes measured offline (a RouterBench-format file or
folder, loaded :class:`~pickllm.replay.Outcomes`, or per-context per-model means with counts)
into at most ``weight`` observations per (context, model) at the measured means, applied
through :meth:`pickllm.Router.observe`: the one update path, so replicas sharing state learn the
same seed and the pooled evidence learns it too. The weight is bounded so that live feedback
outweighs the seed after ``weight`` feedbacks of a model: offline data describe other prompts,
other days, perhaps other model versions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from pickllm.errors import ConfigError

if TYPE_CHECKING:
    from pickllm.replay.outcomes import Outcomes

__all__ = ["Means", "Seed", "WarmStartSource", "seeds"]

#: Per context, per model: ``(mean accuracy, count)`` or ``(mean accuracy, count, mean cost,
#: mean latency)``.
Means: TypeAlias = Mapping[str, Mapping[str, Sequence[float]]]
#: RouterBench files or folders (one, or a list), loaded outcomes, or means with counts.
WarmStartSource: TypeAlias = (
    "str | os.PathLike[str] | list[str | os.PathLike[str]] | Outcomes | Means"
)


@dataclass(frozen=True)
class Seed:
    """What the data say about one (context, model): mean outcomes over ``count`` prompts."""

    context: str
    model: str
    accuracy: float
    count: int
    cost: float = 0.0
    latency: float = 0.0


def seeds(source: WarmStartSource, models: Sequence[str]) -> list[Seed]:
    """The seeds ``source`` gives for the router's ``models`` (others are left out)."""
    if isinstance(source, str | os.PathLike | list | tuple):
        from pickllm.replay import load_routerbench

        source = load_routerbench(source)[0]
    if isinstance(source, Mapping):
        out = [_from_means(context, model, values) for context, by_model in source.items()
               for model, values in by_model.items() if model in models]  # fmt: skip
    else:
        out = _from_outcomes(source, models)
    if not out:
        raise ConfigError(f"warm start: no outcome of any model of the pool {list(models)}")
    return out


def _from_means(context: str, model: str, values: Sequence[float]) -> Seed:
    if not 2 <= len(values) <= 4:
        raise ConfigError(
            f"warm start: {context!r}/{model!r}: expected (accuracy, count) or (accuracy, count, "
            f"cost, latency), got {values!r}"
        )
    accuracy, count, *rest = values
    if not (isinstance(count, int) and count >= 1) or isinstance(count, bool):
        raise ConfigError(f"warm start: {context!r}/{model!r}: count must be an int >= 1")
    return Seed(context, model, float(accuracy), count, *(float(v) for v in rest))


def _from_outcomes(outcomes: Outcomes, models: Sequence[str]) -> list[Seed]:
    out = []
    for block in outcomes.contexts:
        m = block.n_models
        for j, model in enumerate(outcomes.models):
            if model not in models:
                continue
            cells = [q * m + j for q in range(block.n_queries) if block.mask[q * m + j]]
            if not cells:
                continue
            latencies = [block.latency[i] for i in cells if not math.isnan(block.latency[i])]
            out.append(
                Seed(
                    block.name,
                    model,
                    math.fsum(block.accuracy[i] for i in cells) / len(cells),
                    len(cells),
                    math.fsum(block.cost[i] for i in cells) / len(cells),
                    # RouterBench has no latency: unknown counts as 0 (give means with a
                    # latency for a reward that weighs it).
                    math.fsum(latencies) / len(latencies) if latencies else 0.0,
                )
            )
    return out
