"""One global context, the data's labels, or contexts discovered from prompts, side by side.

``pickllm replay --contexts prompts`` and ``benches/contexts.py`` run this: each session replays
the rows of RouterBench-format data (every model's graded answer to each prompt; the prompt
column is needed) in an order shuffled by the session's seed, the labels interleaved, through the
real :class:`pickllm.Router`, three routers fed the same rows in the same order:

* **global**: ``select()``, one context for all traffic;
* **labels**: ``select(context=<label>)``, the data's ``eval_name`` (the task family);
* **prompts**: ``select(prompt=<prompt>)`` on a router with ``contexts=PromptContexts(...)``:
  one context during the warm-up, then the discovered clusters.

``feedback`` gives each decision the chosen model's recorded accuracy and cost on the row
(latency 0: RouterBench has none). The score of a session is the **gap closed** over all its
queries: (reward - random) / (best fixed per label - random), where *random* is the expected
reward of a uniform pick on the same rows and *best fixed per label* what each label's best
model in hindsight earns on them.

>>> rows = [PromptRow(f"{task} question {i}", task, (float(task == "code"), float(task != "code")),
...                   (0.0, 0.0)) for i in range(40) for task in ("code", "trivia")]
>>> result = compare_contexts(["a", "b"], rows, sessions=2, contexts=PromptContexts(warmup=20))
>>> sorted(result.gap_closed), len(result.gap_closed["labels"])
(['global', 'labels', 'prompts'], 2)
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pickllm.config import Policy, Reward
from pickllm.contexts import ClusterStats, PromptContexts
from pickllm.replay._sources import PICKLE_SUFFIXES, StrPath, expand_paths, open_csv, open_pickle
from pickllm.replay._values import BadValueError, check_nonnegative, check_unit, number
from pickllm.replay.errors import DataError
from pickllm.replay.routerbench import CONTEXT_COLUMN, COST_SUFFIX, KNOWN_COLUMNS
from pickllm.router import Router

__all__ = [
    "STRATEGIES",
    "ContextsComparison",
    "GapBounds",
    "PromptRow",
    "compare_contexts",
    "load_prompt_rows",
    "session_gap_closed",
]

#: The three ways of choosing a context, in the order they are reported.
STRATEGIES = ("global", "labels", "prompts")
NAMES = {
    "global": "one global context",
    "labels": "true task labels",
    "prompts": "discovered from prompts",
}
PROMPT_COLUMN = "prompt"


@dataclass(frozen=True, slots=True)
class PromptRow:
    """One prompt, its label (the task family) and each model's accuracy and cost (USD) on it,
    in the order of the pool."""

    prompt: str
    label: str
    accuracy: tuple[float, ...]
    cost: tuple[float, ...]


def load_prompt_rows(
    source: StrPath | Iterable[StrPath], models: Sequence[str] | None = None
) -> tuple[list[str], list[PromptRow], int]:
    """The pool, the rows and the number of rows skipped, from RouterBench-format files (CSV or
    pickled DataFrame; a folder stands for its files, sorted).

    A row is kept when its prompt has text and every model of the pool has a valid accuracy (in
    [0, 1]) and cost (>= 0); others are skipped and counted (the replay compares every model on
    every row). A file without a ``prompt`` or ``eval_name`` column raises DataError."""
    paths = expand_paths(source, {".csv", *PICKLE_SUFFIXES})
    pool: list[str] | None = None if models is None else list(models)
    rows: list[PromptRow] = []
    skipped = 0
    for path in paths:
        table = open_pickle(path) if path.suffix.lower() in PICKLE_SUFFIXES else open_csv(path)
        index = {name: i for i, name in enumerate(table.header)}
        for required in (PROMPT_COLUMN, CONTEXT_COLUMN):
            if required not in index:
                raise DataError(
                    f"no {required!r} column: contexts from prompts need RouterBench's wide "
                    "format with its prompt and eval_name columns",
                    path=table.path,
                    line=1,
                )
        found = [
            name
            for name in table.header
            if name not in KNOWN_COLUMNS and "|" not in name and f"{name}{COST_SUFFIX}" in index
        ]
        if pool is None:
            pool = found
        absent = [m for m in pool if m not in found]
        if absent:
            raise DataError(f"model(s) {absent} not in this file; it has {found}", path=table.path)
        columns = [(index[m], index[f"{m}{COST_SUFFIX}"]) for m in pool]
        for _, values in table.rows:
            row = _row(values, len(table.header), index, columns)
            if row is None:
                skipped += 1
            else:
                rows.append(row)
    if not pool:
        raise DataError(f"no model column (M with M{COST_SUFFIX}) in {', '.join(map(str, paths))}")
    if not rows:
        raise DataError(f"no complete row (prompt, label, every model's outcome) in {paths[0]}")
    return pool, rows, skipped


def _row(
    values: list[Any], width: int, index: dict[str, int], columns: list[tuple[int, int]]
) -> PromptRow | None:
    if len(values) != width:
        return None
    prompt, label = values[index[PROMPT_COLUMN]], values[index[CONTEXT_COLUMN]]
    if not isinstance(prompt, str) or not prompt.strip() or not isinstance(label, str):
        return None
    accuracy, cost = [], []
    try:
        for quality_col, cost_col in columns:
            quality = number(values[quality_col], "quality")
            price = number(values[cost_col], "cost")
            if quality is None or price is None:
                return None
            accuracy.append(check_unit(quality, "quality"))
            cost.append(check_nonnegative(price, "cost"))
    except BadValueError:
        return None
    return PromptRow(prompt, label.strip(), tuple(accuracy), tuple(cost))


@dataclass(frozen=True, slots=True)
class GapBounds:
    """What a session's gap closed is measured between, on its rows: the expected reward of a
    uniform pick (``random``) and what each label's best model in hindsight earns (``best``)."""

    random: float
    best: float

    @classmethod
    def of(cls, rows: Sequence[PromptRow], reward: Reward) -> GapBounds:
        rewards = [
            [
                reward.compute(accuracy=a, cost=c, latency=0.0)
                for a, c in zip(r.accuracy, r.cost, strict=True)
            ]
            for r in rows
        ]
        per_label: dict[str, list[float]] = {}
        for r, values in zip(rows, rewards, strict=True):
            sums = per_label.setdefault(r.label, [0.0] * len(values))
            for i, value in enumerate(values):
                sums[i] += value
        best = sum(max(sums) for sums in per_label.values())
        return cls(sum(statistics.fmean(values) for values in rewards), best)

    def closed(self, total: float) -> float:
        """The share of the gap a session earning ``total`` closed."""
        gap = self.best - self.random
        # A session whose models all earn the same leaves no gap: nothing to close, all closed.
        return (total - self.random) / gap if gap > 0 else 1.0


def session_gap_closed(
    models: Sequence[str],
    rows: Sequence[PromptRow],
    seed: int,
    *,
    reward: Reward,
    contexts: PromptContexts,
    policy: Policy | None = None,
) -> tuple[dict[str, float], Router]:
    """Each strategy's gap closed on ``rows`` in this order, and the prompts router (for its
    clusters). Every router is seeded with ``seed``."""
    bounds = GapBounds.of(rows, reward)
    index = {m: i for i, m in enumerate(models)}
    gaps: dict[str, float] = {}
    prompts_router: Router | None = None
    for strategy in STRATEGIES:
        router = Router(
            list(models),
            policy=policy,
            reward=reward,
            seed=seed,
            contexts=contexts if strategy == "prompts" else None,
        )
        total = 0.0
        for r in rows:
            if strategy == "global":
                decision = router.select()
            elif strategy == "labels":
                decision = router.select(r.label)
            else:
                decision = router.select(prompt=r.prompt)
            i = index[decision.model]
            total += router.feedback(decision, accuracy=r.accuracy[i], cost=r.cost[i])
        gaps[strategy] = bounds.closed(total)
        if strategy == "prompts":
            prompts_router = router
    assert prompts_router is not None
    return gaps, prompts_router


@dataclass
class ContextsComparison:
    """What :func:`compare_contexts` measured: each strategy's gap closed per session, the
    number of clusters each session found, and the first session's clusters with the labels of
    the prompts routed to each after the warm-up (so that a person can name them)."""

    models: list[str]
    sessions: int
    queries: int
    warmup: int
    gap_closed: dict[str, list[float]] = field(default_factory=dict)
    clusters_found: list[int] = field(default_factory=list)
    clusters: list[ClusterStats] = field(default_factory=list)
    labels_by_cluster: dict[str, dict[str, int]] = field(default_factory=dict)

    def summary(self, strategy: str) -> tuple[float, float, float]:
        """Mean, 10th percentile and worst session of a strategy's gap closed."""
        values = sorted(self.gap_closed[strategy])
        p10 = values[max(0, math.ceil(0.1 * len(values)) - 1)]
        return statistics.fmean(values), p10, values[0]

    def table(self) -> str:
        """The comparison as a Markdown table, then the clusters found."""
        lines = [
            "| contexts | gap closed, mean | 10th percentile | worst session |",
            "|---|---|---|---|",
        ]
        for strategy in STRATEGIES:
            mean, p10, worst = self.summary(strategy)
            lines.append(
                f"| {NAMES[strategy]} | {100 * mean:.1f}% | {100 * p10:.1f}% | {100 * worst:.1f}% |"
            )

        pairs = zip(self.gap_closed["prompts"], self.gap_closed["labels"], strict=True)
        differences = [found - labelled for found, labelled in pairs]
        wins = sum(d >= 0 for d in differences)
        spread = ""
        if len(differences) > 1:
            error = statistics.stdev(differences) / math.sqrt(len(differences))
            spread = f" (standard error {100 * error:.1f})"
        counts = ", ".join(
            f"{k}: {n} ({100 * _mean_where(differences, self.clusters_found, k):+.1f})"
            for k, n in sorted(Counter(self.clusters_found).items())
        )
        lines += [
            "",
            f"{self.sessions} sessions of {self.queries} queries, warm-up {self.warmup}; "
            f"discovered >= labels in {wins} of {self.sessions}; discovered - labels, per "
            f"session: {100 * statistics.fmean(differences):+.1f} points{spread}",
            "clusters found (number: sessions (their mean of discovered - labels, points)): "
            + counts,
            "first session's clusters (size in the warm-up, labels routed there after it, "
            "characteristic n-grams):",
        ]
        for cluster in self.clusters:
            labels = self.labels_by_cluster.get(cluster.context, {})
            shown = ", ".join(f"{label} {n}" for label, n in sorted(labels.items()))
            lines.append(
                f"  {cluster.context}: {cluster.size}; {shown or 'none'}; "
                f"{', '.join(cluster.terms[:6])}"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "models": self.models,
            "sessions": self.sessions,
            "queries": self.queries,
            "warmup": self.warmup,
            "gap_closed": self.gap_closed,
            "summary": {
                s: dict(zip(("mean", "p10", "worst"), self.summary(s), strict=True))
                for s in STRATEGIES
            },
            "clusters_found": self.clusters_found,
            "clusters": [
                {"context": c.context, "size": c.size, "terms": list(c.terms)}
                for c in self.clusters
            ],
            "labels_by_cluster": self.labels_by_cluster,
        }

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1))

    def write_figure(self, path: Path) -> None:
        """``path`` (PNG): each strategy's gap closed per session, sorted, worst first (the
        tails beside the mean). Needs matplotlib (the replay extra)."""
        from pickllm.replay.figures import _pyplot

        plt = _pyplot()
        figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
        for strategy, marker in zip(STRATEGIES, ("o", "s", "^"), strict=True):
            values = sorted(self.gap_closed[strategy])
            mean = statistics.fmean(values)
            share = [(i + 0.5) / len(values) for i in range(len(values))]
            axes.plot(
                share,
                [100 * v for v in values],
                marker=marker,
                markersize=3,
                label=f"{NAMES[strategy]} (mean {100 * mean:.1f}%)",
            )
        axes.set_xlabel("share of sessions (sorted, worst first)")
        axes.set_ylabel("gap closed (%)")
        axes.set_title(f"{self.sessions} sessions of {self.queries} queries")
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(path)
        plt.close(figure)


def compare_contexts(
    models: Sequence[str],
    rows: Sequence[PromptRow],
    *,
    sessions: int = 20,
    queries: int | None = None,
    seed: int = 0,
    reward: Reward | None = None,
    contexts: PromptContexts | None = None,
    policy: Policy | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ContextsComparison:
    """Replay ``sessions`` sessions of ``queries`` rows (default: all), session ``s`` shuffled
    by and seeded with ``seed + s``, under the three strategies (see the module docstring).
    ``reward`` defaults to accuracy only; ``contexts`` to ``PromptContexts()``; ``policy`` to
    the default learner."""
    reward = reward or Reward(accuracy=1.0, cost=0.0, latency=0.0)
    contexts = contexts or PromptContexts()
    size = len(rows) if queries is None else min(queries, len(rows))
    if size <= contexts.warmup:
        raise DataError(
            f"{size} queries per session do not outlast the warm-up of {contexts.warmup} "
            "prompts: give more queries or a shorter warm-up"
        )
    result = ContextsComparison(list(models), sessions, size, contexts.warmup)
    result.gap_closed = {s: [] for s in STRATEGIES}
    for s in range(sessions):
        order = list(rows)
        random.Random(seed + s).shuffle(order)
        order = order[:size]
        gaps, router = session_gap_closed(
            models, order, seed + s, reward=reward, contexts=contexts, policy=policy
        )
        for strategy, value in gaps.items():
            result.gap_closed[strategy].append(value)
        stats = router.stats().prompt_contexts
        assert stats is not None
        result.clusters_found.append(len(stats.clusters))
        if s == 0:
            result.clusters = list(stats.clusters)
            result.labels_by_cluster = _labels_by_cluster(router, order[contexts.warmup :])
        if progress is not None:
            progress(s + 1, sessions)
    return result


def _mean_where(values: Sequence[float], keys: Sequence[int], key: int) -> float:
    return statistics.fmean(v for v, k in zip(values, keys, strict=True) if k == key)


def _labels_by_cluster(router: Router, rows: Sequence[PromptRow]) -> dict[str, dict[str, int]]:
    """How many rows of each label the fitted router's mapper assigns to each cluster."""
    mapper = router._mapper
    assert mapper is not None
    counts: dict[str, Counter[str]] = {}
    for r in rows:
        counts.setdefault(mapper.context(r.prompt, None), Counter())[r.label] += 1
    return {context: dict(sorted(c.items())) for context, c in sorted(counts.items())}
