"""One global context, the true task labels, or contexts discovered from prompts, on RouterBench.

    python benches/contexts.py [--data DIR] [--seeds N] [--queries Q] [--warmup W[,W2...]]
        [--tasks-differ] [--oracle]

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

With ``--oracle``, a fourth router per session and warm-up tells the warm-up's cost from the
clustering's: the true labels *after* a warm-up of W queries in one context whose feedback is
then replayed into the labels, exactly what the prompts router does, but with clusters that
are the labels by construction (a perfect mapper). Printed per session: discovered minus this
oracle (what the clustering and assignment cost) and the oracle minus the labels (what the
warm-up costs), each with its standard error.

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
import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from pickllm import PromptContexts, Reward, Router
from pickllm.replay.contexts import GapBounds, PromptRow, compare_contexts, load_prompt_rows

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


def oracle_gap_closed(
    models: Sequence[str], rows: Sequence[PromptRow], seed: int, warmup: int
) -> float:
    """The gap closed by the true labels after a one-context warm-up replayed into them (the
    prompts router with a perfect mapper; see the module docs), with the same ratio as
    :func:`pickllm.replay.contexts.session_gap_closed`."""
    bounds = GapBounds.of(rows, ACCURACY_ONLY)
    router = Router(list(models), reward=ACCURACY_ONLY, seed=seed)
    index = {m: i for i, m in enumerate(models)}
    warm: list[tuple[str, str, float, float, float]] = []
    total = 0.0
    for n, r in enumerate(rows):
        decision = router.select() if n < warmup else router.select(r.label)
        i = index[decision.model]
        total += router.feedback(decision, accuracy=r.accuracy[i], cost=r.cost[i])
        if n < warmup:
            warm.append((r.label, decision.model, r.accuracy[i], r.cost[i], decision.probability))
        if n == warmup - 1:  # the warm-up's feedback, replayed into the labels, in order
            for label, model, accuracy, cost, probability in warm:
                # As the prompt mapper credits it: learned again, but not pooled again.
                router._core.credit(
                    label, model, accuracy=accuracy, cost=cost, probability=probability
                )
    return bounds.closed(total)


def paired(a: Sequence[float], b: Sequence[float]) -> str:
    d = [x - y for x, y in zip(a, b, strict=True)]
    error = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    return f"{100 * statistics.fmean(d):+.2f} points (standard error {100 * error:.2f})"


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
    parser.add_argument(
        "--oracle",
        action="store_true",
        help="also replay the labels after a one-context warm-up (a perfect mapper)",
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
        if args.oracle:
            oracle = []
            for session in range(args.seeds):  # the sessions of compare_contexts (seed 0)
                order = list(rows)
                random.Random(session).shuffle(order)
                oracle.append(oracle_gap_closed(models, order[: args.queries], session, warmup))
            print(
                "\noracle (labels after the warm-up, replayed): "
                f"{100 * statistics.fmean(oracle):.1f}%; "
                f"discovered minus oracle {paired(result.gap_closed['prompts'], oracle)}; "
                f"oracle minus labels {paired(oracle, result.gap_closed['labels'])}"
            )
    first = args.warmup[0]
    for warmup in args.warmup[1:]:
        print(
            f"\ndiscovered, warm-up {warmup} minus warm-up {first}, per session: "
            f"{paired(discovered[warmup], discovered[first])}"
        )


if __name__ == "__main__":
    main()
