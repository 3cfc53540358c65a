"""What the gateway's routers learned, for ``GET /v1/stats`` and the dashboard (``GET /ui``).

Per router and context: each model's current probability, its decisions and share of the
traffic, moving averages of its reward and accuracy, cost and latency percentiles (p50, p99 of
the last ``WINDOW`` settled calls), and whether the context converged (one model holds
``CONVERGED`` of the probability); per router: pending feedback, breaker states and budget
spend. Everything is bounded: at most ``max_contexts`` contexts per router are tracked (later
ones count in the router's totals and in ``untracked_decisions``), and each keeps fixed-size
windows.

Over time, per context: a ring of at most ``SAMPLES`` samples of each model's probability and
decision count, one every ``every`` decisions of the context; when the ring fills, every other
sample is dropped and ``every`` doubles, so the samples always span the context's whole life at
bounded memory. And the changes the policy's change detector found in each context (each
restarted the context's learner): their number and the time and decision count of the last
``CHANGES`` of them.

The JSON is versioned (``"version": 1``); fields are only ever added within a version. It is
documented in docs/gateway.md ("Stats and dashboard"). Each worker keeps its own; with
``--workers N`` the worker that answers merges the others' (:mod:`pickllm.gateway.merge`).
"""

from __future__ import annotations

import math
import time
from array import array
from collections import deque
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pickllm._core import Decision
    from pickllm.contexts import PromptContextsStats
    from pickllm.gateway.app import Gateway

__all__ = ["CONVERGED", "STATS_VERSION", "WINDOW", "GatewayStats"]

#: The version of ``GET /v1/stats``'s JSON.
STATS_VERSION: Final = 1
#: Settled calls kept per model for the cost and latency percentiles.
WINDOW: Final = 1000
#: Decisions kept per context for its share-over-time series.
HISTORY: Final = 500
#: Probability samples kept per context (see :class:`_Samples`).
SAMPLES: Final = 64
#: Detected changes remembered per context (all are counted).
CHANGES: Final = 20
#: Weight of the newest observation in the reward and accuracy moving averages (about the last
#: 1 / ALPHA = 20 observations).
ALPHA: Final = 0.05
#: A context has converged when one model holds at least this probability.
CONVERGED: Final = 0.95


def quantile(values: Collection[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (nearest rank), None when empty."""
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

    def json(self, total: int, raw: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "decisions": self.decisions,
            "share": self.decisions / total if total else None,
            "reward_avg": self.reward.get(),
            "accuracy_avg": self.accuracy.get(),
            "cost_p50": quantile(self.costs, 0.5),
            "cost_p99": quantile(self.costs, 0.99),
            "latency_p50": quantile(self.latencies, 0.5),
            "latency_p99": quantile(self.latencies, 0.99),
        }
        if raw:  # what merging the workers' stats needs (see pickllm.gateway.merge)
            out["_raw"] = {
                "reward": [self.reward.n, self.reward.value],
                "accuracy": [self.accuracy.n, self.accuracy.value],
                "costs": list(self.costs),
                "latencies": list(self.latencies),
            }
        return out


class _Samples:
    """Each model's probability and decision count, sampled every ``every`` decisions; at most
    ``SAMPLES`` samples, thinned (every other one dropped, ``every`` doubled) when full. Rows of
    plain doubles (time, decisions, k probabilities, k counts): 64 samples of 3 models take
    4 KB, so 10,000 contexts about 40 MB."""

    __slots__ = ("every", "rows", "width")

    def __init__(self, models: int) -> None:
        self.every = 1
        self.width = 2 + 2 * models
        self.rows = array("d")

    def offer(
        self, decisions: int, counts: list[int], probabilities: list[float], at: float
    ) -> None:
        if (decisions - 1) % self.every:
            return
        if len(self.rows) >= SAMPLES * self.width:
            w = self.width
            self.rows = array(
                "d", (x for r in range(0, SAMPLES, 2) for x in self.rows[r * w : (r + 1) * w])
            )
            self.every *= 2
            if (decisions - 1) % self.every:
                return
        self.rows.extend([at, decisions, *probabilities, *counts])

    def json(self, models: tuple[str, ...]) -> list[dict[str, Any]]:
        k, w = len(models), self.width
        out = []
        for start in range(0, len(self.rows), w):
            row = self.rows[start : start + w]
            out.append(
                {
                    "time": row[0],
                    "decisions": int(row[1]),
                    "probabilities": dict(zip(models, row[2 : 2 + k], strict=True)),
                    "counts": [int(c) for c in row[2 + k :]],
                }
            )
        return out


class _Scope:
    """One router's, or one of its contexts', per-model statistics."""

    def __init__(self, models: tuple[str, ...]) -> None:
        self.models = {m: _ModelStats() for m in models}
        self.decisions = 0
        self.recent: deque[int] = deque(maxlen=HISTORY)
        self.samples = _Samples(len(models))
        self.changes = 0
        self.last_changes: deque[dict[str, float]] = deque(maxlen=CHANGES)
        self._index = {m: i for i, m in enumerate(models)}

    def decided(self, model: str) -> None:
        self.decisions += 1
        self.models[model].decisions += 1
        self.recent.append(self._index[model])

    def sample(self, probabilities: dict[str, float], at: float) -> None:
        counts = [s.decisions for s in self.models.values()]
        self.samples.offer(self.decisions, counts, [probabilities[m] for m in self.models], at)

    def json(self, raw: bool = False) -> dict[str, dict[str, Any]]:
        return {m: s.json(self.decisions, raw) for m, s in self.models.items()}


class _RouterStats:
    def __init__(self, models: tuple[str, ...], max_contexts: int) -> None:
        self.models = models
        self.all = _Scope(models)
        self.contexts: dict[str, _Scope] = {}
        self.untracked = 0
        self.changes = 0
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

    def __init__(
        self,
        routers: dict[str, tuple[str, ...]],
        max_contexts: int = 10_000,
        clock: Callable[[], float] = time.time,
        changes: dict[str, int] | None = None,
    ) -> None:
        """``changes``: each router's count of detected changes so far (a restored router's)."""
        self._routers = {
            name: _RouterStats(models, max_contexts) for name, models in routers.items()
        }
        for name, count in (changes or {}).items():
            self._routers[name].changes = count
        self._clock = clock

    def decided(
        self, router: str, decision: Decision, probabilities: dict[str, float] | None = None
    ) -> None:
        """A decision was made; ``probabilities``: its context's at that moment (None for a
        fallback: the context's probabilities are sampled on first attempts)."""
        stats = self._routers[router]
        scopes = stats.scopes(decision.context)
        if len(scopes) == 1:
            stats.untracked += 1
        for scope in scopes:
            scope.decided(decision.model)
        if probabilities is not None and len(scopes) == 2:
            scopes[1].sample(probabilities, self._clock())

    def changed(self, router: str, decision: Decision, changes: int) -> None:
        """The router's count of detected changes after ``decision``'s feedback: any increase
        is a change the detector found in ``decision``'s context."""
        stats = self._routers[router]
        found, stats.changes = changes - stats.changes, changes
        if found <= 0:
            return
        scopes = stats.scopes(decision.context)
        if len(scopes) == 2:
            scope = scopes[1]
            scope.changes += found
            scope.last_changes.append({"time": self._clock(), "decisions": scope.decisions})

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
        raw: bool = False,
    ) -> dict[str, Any]:
        """The JSON of ``GET /v1/stats``: every router, or one (``router``); with ``context``,
        that context alone with its recent decisions (the share-over-time series). ``raw``
        adds what merging several workers' snapshots needs (``_raw`` and ``_shared`` keys)."""
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
                    "changes": scope.changes,
                    "models": scope.json(raw),
                }
                if context is not None:
                    entry["recent"] = [stats.models[i] for i in scope.recent]
                    entry["samples"] = scope.samples.json(stats.models)
                    entry["sample_every"] = scope.samples.every
                    entry["last_changes"] = list(scope.last_changes)
                contexts[ctx] = entry
            learned = learner.stats()
            out[name] = {
                "models": list(stats.models),
                "decisions": stats.all.decisions,
                "pending_feedback": gateway.store.count(name),
                "breakers": {m: routed.health.state(m) for m in stats.models},
                "budget_spent_usd": routed.spent(),
                "contexts_tracked": len(stats.contexts),
                "untracked_decisions": stats.untracked,
                "contexts_converged": converged if context is None else None,
                "changes": learned.changes,
                "prompt_contexts": _prompt_contexts(learned.prompt_contexts),
                "totals": stats.all.json(raw),
                "contexts": contexts,
            }
            if raw:
                out[name]["_shared"] = routed.shared
        return {"version": STATS_VERSION, "time": now(), "routers": out}


def _prompt_contexts(found: PromptContextsStats | None) -> dict[str, Any] | None:
    """The router's prompt clusters (``contexts = {kind = "prompts"}``), None without them."""
    if found is None:
        return None
    return {
        "fitted": found.fitted,
        "fitting": found.fitting,
        "fit_error": found.fit_error,
        "warmup_prompts": found.warmup_prompts,
        "silhouette": found.silhouette,
        "clusters": [
            {"context": c.context, "size": c.size, "terms": list(c.terms)} for c in found.clusters
        ],
    }
