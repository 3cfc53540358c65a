"""Prometheus metrics of the gateway (``GET /metrics``).

With several workers, prometheus-client's multiprocess mode adds up what every worker recorded:
``pickllm serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the
workers start (prometheus-client reads it at import), and the endpoint then collects from it.
Gauges of per-worker state (breaker states, budget spend, pending feedback) are combined as the
sum over live workers, or for breaker states the worst.

Contexts are client-supplied and ``/metrics`` needs no key, so by default no context gets a
label (all count as ``"_other"``); with ``metrics_contexts = N`` the first N get their own.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_REWARD_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
#: Breaker states as gauge values: the worst across workers is the largest.
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}
#: Prompt-context states as gauge values: with several workers, the largest is shown (a failed
#: fit anywhere wins).
PROMPT_CONTEXTS_VALUES = {"warmup": 0.0, "fitting": 1.0, "fitted": 2.0, "failed": 3.0}


class Metrics:
    """The gateway's metrics, in one registry (a fresh one per app, so tests can build many)."""

    def __init__(self, max_contexts: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
        r = self.registry
        self._max_contexts = max_contexts
        self._contexts: set[str] = set()
        self.decisions = Counter(
            "pickllm_decisions", "Routing decisions", ["router", "context", "model"], registry=r
        )
        self.rewards = Histogram(
            "pickllm_reward",
            "Rewards applied to the learners",
            ["router", "context", "model"],
            buckets=_REWARD_BUCKETS,
            registry=r,
        )
        self.settled = Counter(
            "pickllm_feedback_settled",
            "Decisions settled, by how: feedback, expired (default accuracy), cancelled",
            ["router", "outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "pickllm_upstream_latency_seconds",
            "Upstream latency, request sent to answer complete",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "pickllm_upstream_ttft_seconds",
            "Upstream time to first token of streamed answers",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.failures = Counter(
            "pickllm_upstream_failures",
            "Failed upstream calls by class",
            ["model", "kind"],
            registry=r,
        )
        self.overloaded = Counter(
            "pickllm_gateway_overloaded",
            "Requests refused because the gateway ran out of local resources (no model blamed)",
            registry=r,
        )
        self.breaker = Gauge(
            "pickllm_breaker_state",
            "Circuit state per router and model: 0 closed, 1 half-open, 2 open",
            ["router", "model"],
            registry=r,
            multiprocess_mode="max",
        )
        self.spent = Gauge(
            "pickllm_budget_spent_usd",
            "USD spent by routed calls (routers with a budget)",
            ["router"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.pending = Gauge(
            "pickllm_pending_feedback",
            "Decisions waiting for feedback",
            ["router"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.log_dropped = Counter(
            "pickllm_decision_log_dropped_records",
            "Decision log records dropped: the writer's queue was full, or a write failed",
            ["router"],
            registry=r,
        )
        self._log_dropped_seen: dict[str, int] = {}
        self.prompt_contexts = Gauge(
            "pickllm_prompt_contexts_state",
            'Prompt contexts (routers with contexts = {kind = "prompts"}): 0 warming up, '
            "1 fitting, 2 fitted, 3 the fit failed (all prompts stay in one context)",
            ["router"],
            registry=r,
            multiprocess_mode="max",
        )

    def decision_log_dropped(self, router: str, dropped: int) -> None:
        """Bring the counter up to ``dropped``, the decision log's own running count (a router
        with a log has the series from the start, at 0 until something is dropped)."""
        seen = self._log_dropped_seen.get(router, 0)
        counter = self.log_dropped.labels(router)
        if dropped > seen:
            counter.inc(dropped - seen)
            self._log_dropped_seen[router] = dropped

    def context(self, context: str) -> str:
        """The label for ``context``: itself while few are known, else ``"_other"``."""
        if context in self._contexts:
            return context
        if len(self._contexts) < self._max_contexts:
            self._contexts.add(context)
            return context
        return "_other"

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        return generate_latest(combined)
