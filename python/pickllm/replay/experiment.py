"""Replay experiments: learners against baselines on identical sessions, with metrics over seeds.

For each context, every strategy runs the same ``sessions`` sessions (seeds ``seed`` ..
``seed + sessions - 1``) of ``queries`` queries. Baselines: random, round-robin, the cheapest
model, the most expensive model, the best fixed model in hindsight (by the reward's own weights)
and the per-query oracle. Optionally a *mixed* run draws each query's context at random from all
contexts, to compare per-context learners with one global learner; its sessions are as many times
longer as there are contexts, so that each context gets ``queries`` queries on average.

Every metric is reported as a mean with a 95% confidence interval over sessions (normal
approximation, ``1.96 * sd / sqrt(n)``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pickllm.config import LearningAutomaton, QLearning, Reward, default_policy
from pickllm.errors import ConfigError
from pickllm.replay.engine import Drift, Session, Strategy, Table, model_means, run_sessions

__all__ = [
    "METRICS",
    "Estimate",
    "Experiment",
    "PolicyResult",
    "default_learner",
    "default_learners",
    "run_experiment",
]

#: What is measured per session, in report order, with a description.
METRICS: dict[str, str] = {
    "cost": "session cost (USD)",
    "mean_latency": "mean latency per query (s)",
    "mean_accuracy": "mean accuracy",
    "mean_reward": "mean reward",
    "regret": "reward lost against the best fixed model, summed over the session",
    "gap_closed": "share of the random-to-best-fixed reward gap closed, rewards summed over "
    "sessions (negative: below random)",
    "converged": "share of sessions that converged (learners)",
    "queries_to_convergence": "queries until convergence, over converged sessions (learners)",
    "converged_to_best": "share of sessions converged to the best fixed model (learners)",
    "queries_to_recover": "queries after the drift until the moving-average reward stays within "
    "5% of the new best fixed model's, over sessions that recovered (with --drift)",
    "recovered": "share of sessions that recovered from the drift (with --drift)",
    "new_best_share": "share of the drift window's queries sent to the new best model",
}

#: The scope name of the mixed-context run.
MIXED = "mixed contexts"

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Estimate:
    """A mean over sessions with its 95% confidence interval; NaN values are left out."""

    mean: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Estimate:
        kept = [v for v in values if not math.isnan(v)]
        if not kept:
            return cls(math.nan, math.nan, math.nan, 0)
        mean = statistics.fmean(kept)
        half = 1.96 * statistics.stdev(kept) / math.sqrt(len(kept)) if len(kept) > 1 else 0.0
        return cls(mean, mean - half, mean + half, len(kept))

    @classmethod
    def ratio(cls, sessions: Sequence[Session]) -> Estimate:
        """Gap closed over all ``sessions`` as one ratio of sums, ``(Σ reward - Σ random) /
        (Σ best fixed - Σ random)``, with the delta method's 95% interval. Its sign is that of
        the reward against random's (a mean of per-session ratios is not: one session whose
        best fixed model barely beat random there gives a huge ratio of either sign)."""
        gaps = [s.best_fixed_reward - s.random_reward for s in sessions]
        gains = [s.reward - s.random_reward for s in sessions]
        gap = statistics.fmean(gaps) if gaps else 0.0
        if gap <= 1e-12:
            return cls(math.nan, math.nan, math.nan, 0)
        ratio = statistics.fmean(gains) / gap
        n = len(sessions)
        residuals = [g - ratio * d for g, d in zip(gains, gaps, strict=True)]
        half = 1.96 * statistics.stdev(residuals) / (math.sqrt(n) * gap) if n > 1 else 0.0
        return cls(ratio, ratio - half, ratio + half, n)

    def to_json(self) -> dict[str, float | int | None]:
        def number(x: float) -> float | None:
            return None if math.isnan(x) else x

        return {
            "mean": number(self.mean),
            "low": number(self.low),
            "high": number(self.high),
            "n": self.n,
        }


@dataclass(frozen=True)
class PolicyResult:
    """One strategy in one scope (a context, or the mixed run)."""

    label: str
    scope: str
    learns: bool
    metrics: dict[str, Estimate]
    #: Share of queries sent to each model.
    picks: dict[str, float]


@dataclass(frozen=True)
class Experiment:
    models: tuple[str, ...]
    reward: Reward
    sessions: int
    queries: int
    seed: int
    results: list[PolicyResult]
    #: Per context: each model's mean accuracy, cost, latency and reward over the context's rows.
    model_means: dict[str, list[dict[str, float | str]]]
    #: Per learning rate label: each model's selection probability before each query, in the
    #: first session of ``trace_context``.
    traces: dict[str, list[list[float]]] = field(default_factory=dict)
    trace_context: str | None = None

    def pooled(self) -> list[PolicyResult]:
        """Each strategy's sessions pooled over all contexts (the mixed run excluded)."""
        labels = list(dict.fromkeys(r.label for r in self.results if r.scope != MIXED))
        pooled = []
        for label in labels:
            rows = [r for r in self.results if r.label == label and r.scope != MIXED]
            metrics = {name: _pool([r.metrics[name] for r in rows]) for name in METRICS}
            picks = {m: statistics.fmean(r.picks[m] for r in rows) for m in self.models}
            pooled.append(PolicyResult(label, "all contexts", rows[0].learns, metrics, picks))
        return pooled

    def to_json(self) -> dict[str, Any]:
        def result(r: PolicyResult) -> dict[str, Any]:
            return {
                "label": r.label,
                "scope": r.scope,
                "learns": r.learns,
                "metrics": {k: v.to_json() for k, v in r.metrics.items()},
                "picks": r.picks,
            }

        return {
            "models": list(self.models),
            "reward": self.reward.model_dump(),
            "sessions": self.sessions,
            "queries": self.queries,
            "seed": self.seed,
            "metrics": METRICS,
            "model_means": self.model_means,
            "pooled": [result(r) for r in self.pooled()],
            "results": [result(r) for r in self.results],
            "traces": {
                "context": self.trace_context,
                "seed": self.seed,
                "probabilities": self.traces,
            },
        }


def _pool(estimates: list[Estimate]) -> Estimate:
    """Combine per-context estimates of equal-size groups into one over all their sessions."""
    kept = [e for e in estimates if e.n > 0]
    if not kept:
        return Estimate(math.nan, math.nan, math.nan, 0)
    n = sum(e.n for e in kept)
    mean = sum(e.mean * e.n for e in kept) / n
    # Half-widths combine as standard errors of a weighted mean of independent groups.
    se = math.sqrt(sum(((e.high - e.low) / 3.92 * e.n / n) ** 2 for e in kept))
    return Estimate(mean, mean - 1.96 * se, mean + 1.96 * se, n)


def default_learner() -> Strategy:
    """The learner ``Router()`` runs (:func:`pickllm.default_policy`), labelled as the default."""
    learner = Strategy.learner(default_policy())
    return replace(learner, label=f"{learner.label} (default)")


def default_learners(learning_rates: Sequence[float] = (0.01, 0.05, 0.1, 0.3)) -> list[Strategy]:
    """The default learner, then the paper's: the automaton at several learning rates and
    Q-learning at two settings."""
    learners = [default_learner()]
    learners += [Strategy.learner(LearningAutomaton(rate)) for rate in learning_rates]
    learners.append(Strategy.learner(QLearning(0.1, epsilon=0.2, epsilon_decay=0.99)))
    learners.append(
        Strategy.learner(
            QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02)
        )
    )
    return learners


def default_mixed() -> list[Strategy]:
    """The learners compared per-context against global in the mixed run."""
    return [
        Strategy.learner(LearningAutomaton(0.1)),
        Strategy.learner(
            QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02)
        ),
    ]


def _drift_metrics(session: Session) -> dict[str, float]:
    after = session.drift
    if after is None:
        return dict.fromkeys(("queries_to_recover", "recovered", "new_best_share"), math.nan)
    return {
        "queries_to_recover": math.nan if after.recover is None else float(after.recover),
        "recovered": float(after.recover is not None),
        "new_best_share": after.window_best_share,
    }


def _session_metrics(session: Session, best: int) -> dict[str, float]:
    """Per-session values. With several learners (a per-context learner in the mixed run), the
    convergence metrics average over learners; ``best < 0`` means no single best model."""
    base = {
        "cost": session.cost,
        "mean_latency": session.mean_latency,
        "mean_accuracy": session.mean_accuracy,
        "mean_reward": session.mean_reward,
        "regret": session.regret,
        "gap_closed": session.gap_closed,
    } | _drift_metrics(session)
    if not session.converged:  # a baseline: nothing converges
        return base | dict.fromkeys(
            ("converged", "queries_to_convergence", "converged_to_best"), math.nan
        )
    done = [c for c in session.converged if c is not None]
    return base | {
        "converged": len(done) / len(session.converged),
        "queries_to_convergence": statistics.fmean(q for q, _ in done) if done else math.nan,
        "converged_to_best": sum(model == best for _, model in done) / len(session.converged)
        if best >= 0
        else math.nan,
    }


def _result(
    label: str,
    scope: str,
    learns: bool,
    sessions: list[Session],
    best: int,
    models: tuple[str, ...],
) -> PolicyResult:
    per_session = [_session_metrics(s, best) for s in sessions]
    metrics = {name: Estimate.of([m[name] for m in per_session]) for name in METRICS}
    metrics["gap_closed"] = Estimate.ratio(sessions)
    total = sum(sum(s.picks) for s in sessions)
    picks = {model: sum(s.picks[j] for s in sessions) / total for j, model in enumerate(models)}
    return PolicyResult(label, scope, learns, metrics, picks)


def run_experiment(
    tables: Sequence[Table],
    reward: Reward,
    *,
    learners: Sequence[Strategy] | None = None,
    sessions: int = 100,
    queries: int = 200,
    seed: int = 0,
    mixed: Sequence[Strategy] | None = None,
    trace_rates: Sequence[float] = (0.01, 0.05, 0.1, 0.3),
    progress: Progress | None = None,
    drift: Drift | None = None,
) -> Experiment:
    """Run every learner and baseline on every context's table, then the mixed run: each
    ``mixed`` learner per-context and global (pass ``mixed=[]`` to skip it). With ``drift``,
    every session's outcomes change as it says (see :class:`Drift`)."""
    if not tables:
        raise ConfigError("an experiment needs at least one context")
    if sessions < 1 or queries < 1:
        raise ConfigError(f"sessions and queries must be >= 1, got {sessions} and {queries}")
    learners = list(default_learners() if learners is None else learners)
    models = tables[0].models
    seeds = list(range(seed, seed + sessions))
    means = {t.name: model_means(t, reward) for t in tables}
    plans: list[tuple[str, list[Table], Strategy, int]] = []
    for table in tables:
        m = means[table.name]
        best = max(range(len(models)), key=lambda j: m[j].reward)
        baselines = [
            Strategy.random(),
            Strategy.round_robin(),
            Strategy.fixed(min(range(len(models)), key=lambda j: m[j].cost), "cheapest"),
            Strategy.fixed(max(range(len(models)), key=lambda j: m[j].cost), "most expensive"),
            Strategy.fixed(best, "best fixed"),
            Strategy.oracle(),
        ]
        plans += [(table.name, [table], s, best) for s in [*baselines, *learners]]
    mixed = list(default_mixed() if mixed is None else mixed)
    if mixed and len(tables) > 1:
        for learner in mixed:
            global_learner = Strategy(
                learner.label + " global", {**learner.spec, "per_context": False}
            )
            plans += [(MIXED, list(tables), s, -1) for s in (learner, global_learner)]
        plans.append((MIXED, list(tables), Strategy.random(), -1))
    results = []
    for done, (scope, group, strategy, best) in enumerate(plans):
        # Mixed sessions are len(group) times longer, so that each context gets as many
        # queries on average as in its own session.
        ran = run_sessions(group, reward, strategy, queries * len(group), seeds, drift=drift)
        results.append(_result(strategy.label, scope, strategy.learns, ran, best, models))
        if progress is not None:
            progress(done + 1, len(plans))
    # One session (the first seed) per learning rate: a mean over sessions would blur sessions
    # that converge to different models into flat lines.
    trace_table = tables[0]
    traces = {}
    for rate in trace_rates:
        strategy = Strategy.learner(LearningAutomaton(rate))
        (session,) = run_sessions([trace_table], reward, strategy, queries, seeds[:1], trace=True)
        width = len(models)
        traces[strategy.label] = [
            list(session.trace[q * width : (q + 1) * width]) for q in range(queries)
        ]
    return Experiment(
        models=models,
        reward=reward,
        sessions=sessions,
        queries=queries,
        seed=seed,
        results=results,
        model_means={
            name: [
                {
                    "model": x.model,
                    "accuracy": x.accuracy,
                    "cost": x.cost,
                    "latency": x.latency,
                    "reward": x.reward,
                }
                for x in values
            ]
            for name, values in means.items()
        },
        traces=traces,
        trace_context=trace_table.name,
    )
