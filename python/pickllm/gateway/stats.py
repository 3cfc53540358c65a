"""What the gateway's routers learned, for ``GET /v1/stats`` and the dashboard (``GET /ui``).

Per router and context: each model's current probability, its decisions and share of the
traffic, moving averages of its reward and accuracy, cost and latency percentiles (p50, p99 of
the last ``WINDOW`` settled calls), and whether the context converged (one model holds
``CONVERGED`` of the probability); per router: pending feedback, breaker states and budget
spend. Everything is bounded: at most ``max_contexts`` contexts per router are tracked (later
ones count in the router's totals and in ``untracked_decisions``), and each keeps fixed-size
windows.

The JSON is versioned (``"version": 1``); fields are only ever added within a version. It is
documented in docs/gateway.md ("Stats and dashboard"). With ``--workers N`` each worker answers
with what it saw itself (its own decisions; the learners' probabilities are shared only when
the router has ``shared`` state).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pickllm._core import Decision
    from pickllm.gateway.app import Gateway

__all__ = ["CONVERGED", "STATS_VERSION", "WINDOW", "GatewayStats"]

#: The version of ``GET /v1/stats``'s JSON.
STATS_VERSION: Final = 1
#: Settled calls kept per model for the cost and latency percentiles.
WINDOW: Final = 1000
#: Decisions kept per context for its share-over-time series.
HISTORY: Final = 500
#: Weight of the newest observation in the reward and accuracy moving averages (about the last
#: 1 / ALPHA = 20 observations).
ALPHA: Final = 0.05
#: A context has converged when one model holds at least this probability.
CONVERGED: Final = 0.95


def _quantile(values: deque[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


class _Average:
    """An exponentially weighted moving average (the plain mean until 1 / ALPHA values)."""

    __slots__ = ("n", "value")

    def __init__(self) -> None:
        self.n = 0
        self.value = 0.0

    def add(self, x: float) -> None:
        self.n += 1
        self.value += (x - self.value) * max(ALPHA, 1.0 / self.n)

    def get(self) -> float | None:
        return self.value if self.n else None


class _ModelStats:
    __slots__ = ("accuracy", "costs", "decisions", "latencies", "reward")

    def __init__(self) -> None:
        self.decisions = 0
        self.reward = _Average()
        self.accuracy = _Average()
        self.costs: deque[float] = deque(maxlen=WINDOW)
        self.latencies: deque[float] = deque(maxlen=WINDOW)

    def settled(self, accuracy: float, cost: float, latency: float) -> None:
        self.accuracy.add(accuracy)
        self.costs.append(cost)
        self.latencies.append(latency)

    def json(self, total: int) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "share": self.decisions / total if total else None,
            "reward_avg": self.reward.get(),
            "accuracy_avg": self.accuracy.get(),
            "cost_p50": _quantile(self.costs, 0.5),
            "cost_p99": _quantile(self.costs, 0.99),
            "latency_p50": _quantile(self.latencies, 0.5),
            "latency_p99": _quantile(self.latencies, 0.99),
        }


class _Scope:
    """One router's, or one of its contexts', per-model statistics."""

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = {m: _ModelStats() for m in models}
        self.decisions = 0
        self.recent: deque[int] = deque(maxlen=HISTORY)
        self._index = {m: i for i, m in enumerate(models)}

    def decided(self, model: str) -> None:
        self.decisions += 1
        self.models[model].decisions += 1
        self.recent.append(self._index[model])

    def json(self) -> dict[str, dict[str, Any]]:
        return {m: s.json(self.decisions) for m, s in self.models.items()}


class _RouterStats:
    def __init__(self, models: tuple[str, ...], max_contexts: int) -> None:
        self.models = models
        self.all = _Scope(models)
        self.contexts: dict[str, _Scope] = {}
        self.untracked = 0
        self._max_contexts = max_contexts

    def scopes(self, context: str) -> tuple[_Scope, ...]:
        scope = self.contexts.get(context)
        if scope is None:
            if len(self.contexts) >= self._max_contexts:
                return (self.all,)
            scope = self.contexts[context] = _Scope(self.models)
        return (self.all, scope)


class GatewayStats:
    """The gateway's statistics, fed by the gateway as it routes and settles."""

    def __init__(self, routers: dict[str, tuple[str, ...]], max_contexts: int = 10_000) -> None:
        self._routers = {
            name: _RouterStats(models, max_contexts) for name, models in routers.items()
        }

    def decided(self, router: str, decision: Decision) -> None:
        stats = self._routers[router]
        scopes = stats.scopes(decision.context)
        if len(scopes) == 1:
            stats.untracked += 1
        for scope in scopes:
            scope.decided(decision.model)

    def settled(
        self, router: str, decision: Decision, accuracy: float, cost: float, latency: float
    ) -> None:
        for scope in self._routers[router].scopes(decision.context):
            scope.models[decision.model].settled(accuracy, cost, latency)

    def learned(self, router: str, decision: Decision, reward: float) -> None:
        for scope in self._routers[router].scopes(decision.context):
            scope.models[decision.model].reward.add(reward)

    # ==================== GET /v1/stats ====================

    def snapshot(
        self,
        gateway: Gateway,
        *,
        router: str | None = None,
        context: str | None = None,
        now: Callable[[], float] = time.time,
    ) -> dict[str, Any]:
        """The JSON of ``GET /v1/stats``: every router, or one (``router``); with ``context``,
        that context alone with its recent decisions (the share-over-time series)."""
        names = [router] if router is not None else list(self._routers)
        out: dict[str, Any] = {}
        for name in names:
            stats, routed = self._routers[name], gateway.routers[name]
            learner = routed.router
            contexts: dict[str, Any] = {}
            wanted = [context] if context is not None else list(stats.contexts)
            converged = 0
            for ctx in wanted:
                scope = stats.contexts.get(ctx)
                if scope is None:
                    continue
                probabilities = learner.probabilities(ctx)
                top = max(probabilities, key=probabilities.__getitem__)
                done = probabilities[top] >= CONVERGED
                converged += done
                entry: dict[str, Any] = {
                    "decisions": scope.decisions,
                    "probabilities": probabilities,
                    "converged": done,
                    "leader": top,
                    "models": scope.json(),
                }
                if context is not None:
                    entry["recent"] = [stats.models[i] for i in scope.recent]
                contexts[ctx] = entry
            out[name] = {
                "models": list(stats.models),
                "decisions": stats.all.decisions,
                "pending_feedback": gateway.store.count(name),
                "breakers": {m: routed.health.state(m) for m in stats.models},
                "budget_spent_usd": routed.spent(),
                "contexts_tracked": len(stats.contexts),
                "untracked_decisions": stats.untracked,
                "contexts_converged": converged if context is None else None,
                "totals": stats.all.json(),
                "contexts": contexts,
            }
        return {"version": STATS_VERSION, "time": now(), "routers": out}
