"""One global context, the true task labels, or contexts discovered from prompts, on RouterBench.

    python benches/contexts.py [--data DIR] [--seeds N] [--queries Q] [--warmup W]

Each session replays the RouterBench rows (``DIR/routerbench/*.csv``: three task families,
every model's graded answer per prompt) in an order shuffled by its seed, the families
interleaved, through the real :class:`pickllm.Router` (default policy, accuracy-only reward,
the session's seed): ``select`` picks a model and ``feedback`` gives it that model's recorded
accuracy on the row. Three routers per session, each fed the same rows:

* **global**: ``select()``, one context for all traffic;
* **labels**: ``select(context=<task family>)``, the true labels;
* **prompts**: ``select(prompt=<prompt>)`` with ``contexts=PromptContexts(warmup=W,
  max_clusters=16)``: one context during the warm-up, then the discovered clusters (the warm-up
  feedback replayed into them).

Gap closed, per session, over all its queries: (reward - random) / (best fixed per task -
random), where *random* is the expected reward of a uniform pick on the same rows and *best fixed
per task* what the best model of each task family in hindsight (on the session's rows) earns:
the ratio the issue's table uses. Printed: mean over sessions, the 10th percentile and the worst
session, and the mean number of clusters found.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import random
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pickllm import PromptContexts, Reward, Router

ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)
STRATEGIES = ("global", "labels", "prompts")


@dataclass(frozen=True)
class Row:
    prompt: str
    task: str
    accuracy: tuple[float, ...]


def load(folder: Path) -> tuple[list[str], list[Row]]:
    """Every row whose models all have a finite accuracy, and the pool (the CSVs' columns)."""
    csv.field_size_limit(sys.maxsize)
    models: list[str] | None = None
    rows: list[Row] = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            found = [
                c
                for c in fields
                if c
                and "|" not in c
                and c not in {"sample_id", "prompt", "eval_name", "oracle_model_to_route_to"}
            ]
            models = models or found
            if found != models:
                raise SystemExit(f"{path}: another pool of models")
            for record in reader:
                try:
                    accuracy = tuple(float(record[m]) for m in models)
                except ValueError:
                    continue
                if all(math.isfinite(a) for a in accuracy) and record["prompt"].strip():
                    rows.append(Row(record["prompt"], record["eval_name"], accuracy))
    if models is None:
        raise SystemExit(f"no RouterBench CSV in {folder}")
    return models, rows


def rotated(rows: list[Row], models: int) -> list[Row]:
    """Task k's accuracies shifted by k * (models // tasks) columns: real prompts and real
    accuracy distributions, but a different best model per task (RouterBench has one model best
    everywhere, where contexts can gain little)."""
    tasks = sorted({r.task for r in rows})
    step = max(1, models // len(tasks))
    out = []
    for r in rows:
        shift = tasks.index(r.task) * step
        accuracy = tuple(r.accuracy[(i + shift) % models] for i in range(models))
        out.append(Row(r.prompt, r.task, accuracy))
    return out


def session(
    models: list[str], rows: list[Row], seed: int, warmup: int
) -> dict[str, tuple[float, int]]:
    """Gap closed by each strategy on ``rows`` in this order (and clusters found)."""
    random_reward = sum(statistics.fmean(r.accuracy) for r in rows)
    per_task: dict[str, list[float]] = {}
    for r in rows:
        sums = per_task.setdefault(r.task, [0.0] * len(models))
        for i, a in enumerate(r.accuracy):
            sums[i] += a
    best_fixed = sum(max(sums) for sums in per_task.values())
    gap = best_fixed - random_reward
    out: dict[str, tuple[float, int]] = {}
    for strategy in STRATEGIES:
        contexts = PromptContexts(warmup=warmup, max_clusters=16) if strategy == "prompts" else None
        router = Router(models, reward=ACCURACY_ONLY, seed=seed, contexts=contexts)
        index = {m: i for i, m in enumerate(models)}
        reward = 0.0
        for r in rows:
            if strategy == "global":
                d = router.select()
            elif strategy == "labels":
                d = router.select(r.task)
            else:
                d = router.select(prompt=r.prompt)
            accuracy = r.accuracy[index[d.model]]
            reward += router.feedback(d, accuracy=accuracy)
        stats = router.stats().prompt_contexts
        clusters = len(stats.clusters) if stats is not None else 0
        out[strategy] = ((reward - random_reward) / gap, clusters)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(
        os.environ.get("PICKLLM_DATA_DIR", Path(__file__).parent.parent / ".." / "shared" / "data")
    )
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument(
        "--tasks-differ",
        action="store_true",
        help="rotate the models' accuracy columns per task so that each task has another best",
    )
    args = parser.parse_args()
    models, rows = load(args.data / "routerbench")
    if args.tasks_differ:
        rows = rotated(rows, len(models))
    tasks = sorted({r.task for r in rows})
    print(
        f"{len(rows)} rows, {len(models)} models, tasks {tasks}; {args.seeds} seeds x "
        f"{args.queries} queries, warm-up {args.warmup}"
        + (", models rotated per task" if args.tasks_differ else "")
    )
    started = time.perf_counter()
    results: dict[str, list[float]] = {s: [] for s in STRATEGIES}
    clusters: list[int] = []
    for seed in range(args.seeds):
        order = rows[:]
        random.Random(seed).shuffle(order)
        outcome = session(models, order[: args.queries], seed, args.warmup)
        for s in STRATEGIES:
            results[s].append(outcome[s][0])
        clusters.append(outcome["prompts"][1])
    print(f"({time.perf_counter() - started:.0f} s)\n")
    print("| contexts | gap closed, mean | 10th percentile | worst session |")
    print("|---|---|---|---|")
    names = {
        "global": "one global context",
        "labels": "true task labels",
        "prompts": "discovered from prompts",
    }
    for s in STRATEGIES:
        values = sorted(results[s])
        p10 = values[max(0, math.ceil(0.1 * len(values)) - 1)]
        print(
            f"| {names[s]} | {100 * statistics.fmean(values):.1f}% | {100 * p10:.1f}% "
            f"| {100 * values[0]:.1f}% |"
        )
    counts = ", ".join(f"{k} clusters: {n}" for k, n in sorted(Counter(clusters).items()))
    print(f"\nclusters found (sessions): {counts}")
    pairs = zip(results["prompts"], results["labels"], strict=True)
    wins = sum(found >= labelled for found, labelled in pairs)
    print(f"sessions where discovered >= labels: {wins}/{len(clusters)}")


if __name__ == "__main__":
    main()
