"""Replay sessions in the Rust core: recorded outcomes in, one result per session out.

A session is ``queries`` queries drawn from one context's recorded rows in an order fixed by its
seed; a strategy (a learner or a baseline) picks one model per query and the outcome is read from
the data. Every strategy sees the same queries for the same seed, so policies compare on identical
sessions. Sessions run in the core with the interpreter released.

Examples:
    >>> from array import array
    >>> from pickllm import LearningAutomaton, Reward
    >>> table = Table(
    ...     "math", ("big", "small"),
    ...     accuracy=array("d", [1.0, 0.0, 1.0, 1.0]), cost=array("d", [0.01, 0.001] * 2),
    ...     latency=array("d", [2.0, 0.5] * 2),
    ... )
    >>> learner = Strategy.learner(LearningAutomaton(0.1))
    >>> sessions = run_sessions([table], Reward(), learner, 50, [1, 2])
    >>> [s.queries for s in sessions]
    [50, 50]
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pickllm import _core
from pickllm.config import UCB, Exp3, LearningAutomaton, Policy, QLearning, Reward, ThompsonSampling
from pickllm.errors import ConfigError
from pickllm.replay.outcomes import Outcomes

__all__ = [
    "Drift",
    "DriftOutcome",
    "ModelMeans",
    "Session",
    "Strategy",
    "Table",
    "model_means",
    "run_sessions",
    "tables",
]


@dataclass(frozen=True)
class Table:
    """One context's complete rows for a pool: row-major query x model, every value finite."""

    name: str
    models: tuple[str, ...]
    accuracy: array[float]
    cost: array[float]
    latency: array[float]

    @property
    def rows(self) -> int:
        return len(self.accuracy) // len(self.models)

    def columns(self) -> tuple[array[float], array[float], array[float]]:
        return self.accuracy, self.cost, self.latency


def tables(outcomes: Outcomes) -> list[Table]:
    """One table per context of ``outcomes``, keeping the queries every model answered with a
    known latency (select the pool and fill latencies first; see :class:`LatencyModel`)."""
    complete = outcomes.complete(require_latency=True)
    return [
        Table(block.name, complete.models, block.accuracy, block.cost, block.latency)
        for block in complete.contexts
    ]


@dataclass(frozen=True)
class Strategy:
    """Who picks the model of each query: a learner or a baseline. ``label`` names it in reports."""

    label: str
    spec: dict[str, Any]

    @classmethod
    def learner(
        cls, policy: Policy, *, per_context: bool = True, label: str | None = None
    ) -> Strategy:
        """A learning policy; ``per_context=False`` shares one learner across all contexts."""
        return cls(
            label or _policy_label(policy) + ("" if per_context else " global"),
            {"kind": "learner", "policy": policy._core_dict(), "per_context": per_context},
        )

    @classmethod
    def random(cls) -> Strategy:
        return cls("random", {"kind": "random"})

    @classmethod
    def round_robin(cls) -> Strategy:
        return cls("round-robin", {"kind": "round_robin"})

    @classmethod
    def fixed(cls, model: int, label: str) -> Strategy:
        """Always model number ``model`` of the pool."""
        return cls(label, {"kind": "fixed", "model": model})

    @classmethod
    def oracle(cls) -> Strategy:
        """Per query, the model with the highest reward on that query: the ceiling."""
        return cls("oracle", {"kind": "oracle"})

    @property
    def learns(self) -> bool:
        return bool(self.spec["kind"] == "learner")


def _policy_label(policy: Policy) -> str:
    match policy:
        case LearningAutomaton():
            return f"automaton lr={policy.learning_rate:g}"
        case QLearning():
            rate = policy.learning_rate
            step = "1/n" if rate == "sample_average" else f"{rate:g}"
            locking = "" if policy.lock else " unlocked"
            exploring = f"eps={policy.epsilon:g}->{policy.epsilon_min:g}"
            return f"q-learning a={step} {exploring}{locking}" + _sharing(policy.share)
        case ThompsonSampling():
            return "thompson" + _forgetting(policy.discount) + _sharing(policy.share)
        case UCB():
            shared = f" share={policy.share:g}"
            return (
                f"ucb-{policy.bound} c={policy.exploration:g}"
                + _forgetting(policy.discount)
                + shared
            )
        case Exp3():
            return (
                f"exp3 g={policy.gamma:g}" + _forgetting(policy.discount) + _sharing(policy.share)
            )


def _sharing(share: float) -> str:
    return "" if share == 0.0 else f" share={share:g}"


def _forgetting(discount: float) -> str:
    return "" if discount == 1.0 else f" d={discount:g}"


@dataclass(frozen=True)
class Session:
    """What one replayed session produced; sums over its queries unless named ``mean_``."""

    queries: int
    cost: float
    latency: float
    accuracy: float
    reward: float
    #: What the best fixed model of each query's context would have earned on the same queries.
    best_fixed_reward: float
    #: The expected reward of uniform random choice on the same queries.
    random_reward: float
    #: How often each model of the pool was chosen.
    picks: tuple[int, ...]
    #: Per learner: (1-based query at which it first counted as converged, model index) or None.
    converged: tuple[tuple[int, int] | None, ...]
    #: With ``trace=True``: the first learner's probabilities before each query, row-major.
    trace: tuple[float, ...]
    #: With a :class:`Drift`: what happened after it.
    drift: DriftOutcome | None = None
    #: With ``trace=True``, per query: the reward earned and the reward the final best fixed
    #: model (the best after the drift, if any) would have earned on it, pairs in query order.
    rewards: tuple[float, ...] = ()

    @property
    def mean_latency(self) -> float:
        return self.latency / self.queries

    @property
    def mean_accuracy(self) -> float:
        return self.accuracy / self.queries

    @property
    def mean_reward(self) -> float:
        return self.reward / self.queries

    @property
    def regret(self) -> float:
        """Reward lost against the best fixed model in hindsight, on the same queries."""
        return self.best_fixed_reward - self.reward

    @property
    def gap_closed(self) -> float:
        """Share of the random-to-best-fixed reward gap this session closed (NaN if no gap)."""
        gap = self.best_fixed_reward - self.random_reward
        return (self.reward - self.random_reward) / gap if gap > 1e-12 else math.nan


@dataclass(frozen=True)
class Drift:
    """The outcomes change mid-session: from query ``at`` on (0-based), model number ``model``
    has its accuracy multiplied by ``accuracy`` (capped at 1; an outage) and its cost by ``cost``
    (a price cut), in every context. ``smoothing`` queries make the moving averages of
    queries-to-recover; picks of the new best model are counted over the queries
    ``window = (start, end)`` after the change."""

    at: int
    model: int
    accuracy: float = 1.0
    cost: float = 1.0
    smoothing: int = 200
    window: tuple[int, int] = (1500, 2000)

    def _core_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "model": self.model,
            "accuracy": self.accuracy,
            "cost": self.cost,
            "smoothing": self.smoothing,
            "window": list(self.window),
        }


@dataclass(frozen=True)
class DriftOutcome:
    """What a session did after its drift."""

    #: Queries after the change until the moving-average reward stays within 5% of the new best
    #: fixed model's for good; None if it was still short when the session ended.
    recover: int | None
    #: Reward summed over the queries after the change, and the new best fixed model's.
    reward: float
    best_fixed_reward: float
    #: In the window: picks of the new best model, and queries.
    window_best_picks: int
    window_queries: int

    @property
    def window_best_share(self) -> float:
        """Share of the window's queries that went to the new best model (NaN if empty)."""
        return self.window_best_picks / self.window_queries if self.window_queries else math.nan


def run_sessions(
    tables: Sequence[Table],
    reward: Reward,
    strategy: Strategy,
    queries: int,
    seeds: Sequence[int],
    *,
    trace: bool = False,
    drift: Drift | None = None,
) -> list[Session]:
    """One session per seed over ``tables`` (several tables: each query's context is drawn
    uniformly at random, and a per-context learner keeps one learner per table), the outcomes
    changing as ``drift`` says if given."""
    if not tables:
        raise ConfigError("tables must hold at least one context")
    models = tables[0].models
    if any(t.models != models for t in tables):
        raise ConfigError("every table must have the same pool of models, in the same order")
    results = _core.replay_sessions(
        len(models),
        [t.columns() for t in tables],
        json.dumps(reward._core_dict()),
        json.dumps(strategy.spec),
        queries,
        list(seeds),
        trace,
        None if drift is None else json.dumps(drift._core_dict()),
    )
    return [
        Session(
            queries,
            r.cost,
            r.latency,
            r.accuracy,
            r.reward,
            r.best_fixed_reward,
            r.random_reward,
            tuple(r.picks),
            tuple(r.converged),
            tuple(r.trace),
            None if r.drift is None else DriftOutcome(*r.drift),
            tuple(r.rewards),
        )
        for r in results
    ]


@dataclass(frozen=True)
class ModelMeans:
    """One model's means over one table."""

    model: str
    accuracy: float
    cost: float
    latency: float
    reward: float


def model_means(table: Table, reward: Reward) -> list[ModelMeans]:
    """Per model of the pool: mean accuracy, cost, latency and reward over the table."""
    means = _core.table_means(len(table.models), table.columns(), json.dumps(reward._core_dict()))
    return [ModelMeans(model, *values) for model, values in zip(table.models, means, strict=True)]
