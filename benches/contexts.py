"""One global context, the true task labels, or contexts discovered from prompts, on RouterBench.

    python benches/contexts.py [--data DIR] [--seeds N] [--queries Q] [--warmup W[,W2...]]
        [--tasks-differ]

With several warm-ups, each gets its table, then the paired difference of the discovered
contexts' gap closed between each later warm-up and the first (the same sessions, so the
sessions' own spread cancels), with its standard error.

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
import math
import os
import statistics
import time
from pathlib import Path

from pickllm import PromptContexts, Reward
from pickllm.replay.contexts import PromptRow, compare_contexts, load_prompt_rows

ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)


def rotated(rows: list[PromptRow], models: int) -> list[PromptRow]:
    """Task k's accuracies shifted by k * (models // tasks) columns: real prompts and real
    accuracy distributions, but a different best model per task (RouterBench has one model best
    everywhere, where contexts can gain little)."""
    tasks = sorted({r.label for r in rows})
    step = max(1, models // len(tasks))
    out = []
    for r in rows:
        shift = tasks.index(r.label) * step
        accuracy = tuple(r.accuracy[(i + shift) % models] for i in range(models))
        out.append(PromptRow(r.prompt, r.label, accuracy, r.cost))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(
        os.environ.get("PICKLLM_DATA_DIR", Path(__file__).parent.parent / ".." / "shared" / "data")
    )
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--queries", type=int, default=3000)
    parser.add_argument(
        "--warmup",
        type=lambda text: [int(w) for w in text.split(",")],
        default=[PromptContexts.model_fields["warmup"].default],
        help="warm-up(s), comma-separated",
    )
    parser.add_argument(
        "--tasks-differ",
        action="store_true",
        help="rotate the models' accuracy columns per task so that each task has another best",
    )
    args = parser.parse_args()
    models, rows, _ = load_prompt_rows(args.data / "routerbench")
    if args.tasks_differ:
        rows = rotated(rows, len(models))
    tasks = sorted({r.label for r in rows})
    print(
        f"{len(rows)} rows, {len(models)} models, tasks {tasks}; {args.seeds} seeds x "
        f"{args.queries} queries" + (", models rotated per task" if args.tasks_differ else "")
    )
    discovered: dict[int, list[float]] = {}
    for warmup in args.warmup:
        started = time.perf_counter()
        result = compare_contexts(
            models,
            rows,
            sessions=args.seeds,
            queries=args.queries,
            reward=ACCURACY_ONLY,
            contexts=PromptContexts(warmup=warmup, max_clusters=16),
        )
        print(f"\nwarm-up {warmup} ({time.perf_counter() - started:.0f} s)\n")
        print(result.table())
        discovered[warmup] = result.gap_closed["prompts"]
    first = args.warmup[0]
    for warmup in args.warmup[1:]:
        d = [b - a for a, b in zip(discovered[first], discovered[warmup], strict=True)]
        error = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        print(
            f"\ndiscovered, warm-up {warmup} minus warm-up {first}, per session: "
            f"{100 * statistics.fmean(d):+.2f} points (standard error {100 * error:.2f})"
        )


if __name__ == "__main__":
    main()
