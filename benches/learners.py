"""Compare learners on replayed and simulated data; prints the tables of docs/learners.md.

    python benches/learners.py [--data DIR] [--seeds 100] [--drift-seeds 20] [--only TEXT]

Every session is one real ``Router`` (the Python API, as a user runs it) serving all contexts
of a data set with their queries interleaved (each query's context drawn uniformly), one
learner per context, accuracy-only reward. Reported over ``--seeds`` sessions (seed = session):

* **RouterBench** (``DIR/routerbench``: arc-challenge, mbpp, winogrande, 11 models), 3,000
  queries per session, and the built-in scenario (default.json, 3 contexts, 4 models), 3,000
  queries. Two ratios of the random-to-best-fixed gap: **aggregate** (reward summed over all
  queries: ``(learner - random) / (best fixed - random)``, the best fixed model taken per
  context in hindsight) and **mean per-context** (that ratio computed per context, then
  averaged over the contexts), each averaged over sessions, with the worst session's aggregate.
  **Lock-outs**: sessions where the data set's best model (by mean accuracy over all its
  queries: gpt-4 on RouterBench) was picked at most twice.
* **Drift**: three models with accuracies 0.8 / 0.5 / 0.3 becoming 0.3 / 0.5 / 0.85 at query
  2,000 (Bernoulli outcomes, one context), 4,000 queries: the sessions (of ``--drift-seeds``)
  that send most of queries 3,500-4,000 to the new best, and the mean share they send. The
  same with a gradual change (linear from query 1,500 to 2,500).

The data order and the outcomes depend on the seed only, so every policy sees the same queries.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pickllm import (
    UCB,
    ChangeDetector,
    Exp3,
    LearningAutomaton,
    Policy,
    QLearning,
    Reward,
    Router,
    ThompsonSampling,
)
from pickllm.replay import Outcomes, load_routerbench
from pickllm.replay.engine import Table, tables
from pickllm.replay.scenario import Scenario

ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)
QUERIES = 3000
#: A session is locked out when the best model is picked at most this often.
LOCKED_OUT = 2

#: The candidates; the first is the default, ``UCB()``.
POLICIES: list[tuple[str, Policy]] = [
    ("UCB() (default)", UCB()),
    ("UCB(detect_changes=None)", UCB(detect_changes=None)),
    ("UCB(floor=0, detect_changes=None)", UCB(floor=0.0, detect_changes=None)),
    ("UCB(share=0, floor=0, detect_changes=None)", UCB(share=0.0, floor=0.0, detect_changes=None)),
    ("UCB(share=0)", UCB(share=0.0)),
    ("UCB(floor=0.005)", UCB(floor=0.005)),
    ("UCB(floor=0.02)", UCB(floor=0.02)),
    ("UCB(share=10)", UCB(share=10.0)),
    ("UCB(detect_changes=ChangeDetector(delta=0.001))", UCB(detect_changes=ChangeDetector(0.001))),
    (
        "UCB(detect_changes=ChangeDetector(stride=10))",
        UCB(detect_changes=ChangeDetector(stride=10)),
    ),
    ("UCB(detect_changes=ChangeDetector(stride=1))", UCB(detect_changes=ChangeDetector(stride=1))),
    ("UCB(discount=0.999, detect_changes=None)", UCB(discount=0.999, detect_changes=None)),
    ("ThompsonSampling(share=10)", ThompsonSampling(share=10.0)),
    (
        "ThompsonSampling(share=10, floor=0.01, detect_changes=ChangeDetector())",
        ThompsonSampling(share=10.0, floor=0.01, detect_changes=ChangeDetector()),
    ),
    ("Exp3(gamma=0.1)", Exp3(gamma=0.1)),
    ("LearningAutomaton(0.1)", LearningAutomaton(0.1)),
    (
        "QLearning('sample_average', epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02)",
        QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02),
    ),
]


@dataclass
class Outcome:
    """One session on a data set: reward, the two gap ratios and the best model's picks."""

    reward: float
    aggregate: float
    per_context: float
    best_picks: int
    #: Restarts by the change detector: false alarms, on these stationary data.
    changes: int


def routerbench(data: Path) -> list[Table]:
    """RouterBench's contexts; it has no latency, which an accuracy-only reward ignores."""
    outcomes, _ = load_routerbench(sorted((data / "routerbench").glob("*.csv")))
    complete = outcomes.complete(require_latency=False)
    return [
        Table(b.name, complete.models, b.accuracy, b.cost, b.accuracy) for b in complete.contexts
    ]


def routerbench_split(data: Path) -> tuple[Outcomes, list[Table]]:
    """RouterBench's train files (to warm start from) and its test files' contexts (to replay)."""
    train, _ = load_routerbench(sorted((data / "routerbench").glob("*_train.csv")))
    outcomes, _ = load_routerbench(sorted((data / "routerbench").glob("*_test.csv")))
    complete = outcomes.complete(require_latency=False)
    test = [
        Table(b.name, complete.models, b.accuracy, b.cost, b.accuracy) for b in complete.contexts
    ]
    return train, test


def scenario() -> list[Table]:
    return tables(Scenario.default().outcomes(rows=1000, seed=0))


def column_means(table: Table) -> list[float]:
    m = len(table.models)
    return [statistics.fmean(table.accuracy[i::m]) for i in range(m)]


def session(
    policy: Policy,
    data: Sequence[Table],
    seed: int,
    warm: Outcomes | None = None,
    queries: int = QUERIES,
) -> Outcome:
    """One router over every context of ``data``, ``queries`` queries interleaved (warm started
    from the ``warm`` files, if any)."""
    models = data[0].models
    m = len(models)
    index = {name: i for i, name in enumerate(models)}
    best = [max(range(m), key=column_means(t).__getitem__) for t in data]
    pooled = [sum(column_means(t)[i] * t.rows for t in data) for i in range(m)]
    overall_best = max(range(m), key=pooled.__getitem__)
    router = Router(list(models), policy=policy, reward=ACCURACY_ONLY, seed=seed)
    if warm is not None:
        router.warm_start(warm)
    order = random.Random(seed)
    rows = [list(range(t.rows)) for t in data]
    position = [len(r) for r in rows]
    # Per context: the learner's, the best fixed model's and random choice's reward sums.
    sums = [[0.0, 0.0, 0.0] for _ in data]
    best_picks = 0
    for _ in range(queries):
        c = order.randrange(len(data))
        if position[c] == len(rows[c]):
            order.shuffle(rows[c])
            position[c] = 0
        row = rows[c][position[c]]
        position[c] += 1
        table = data[c]
        cells = table.accuracy[row * m : (row + 1) * m]
        decision = router.select(table.name)
        arm = index[decision.model]
        best_picks += arm == overall_best
        router.feedback(decision, accuracy=cells[arm])
        sums[c][0] += cells[arm]
        sums[c][1] += cells[best[c]]
        sums[c][2] += sum(cells) / m

    def closed(own: float, fixed: float, rand: float) -> float:
        return (own - rand) / (fixed - rand)

    total = [sum(s[k] for s in sums) for k in range(3)]
    return Outcome(
        total[0],
        closed(*total),
        statistics.fmean(closed(*s) for s in sums if s[1] - s[2] > 1e-9),
        best_picks,
        router.stats().changes,
    )


#: Accuracies of the three models before and after the change.
BEFORE, AFTER = (0.8, 0.5, 0.3), (0.3, 0.5, 0.85)


def abrupt(query: int) -> tuple[float, ...]:
    return BEFORE if query < 2000 else AFTER


def gradual(query: int) -> tuple[float, ...]:
    w = min(1.0, max(0.0, (query - 1500) / 1000))
    return tuple(b + w * (a - b) for b, a in zip(BEFORE, AFTER, strict=True))


@dataclass
class Followed:
    """One drift session: the share of queries 3,500-4,000 sent to the new best model, and the
    query of the detector's first restart after query 2,000 (None: none)."""

    share: float
    detected: int | None


def drift(policy: Policy, accuracies: Callable[[int], tuple[float, ...]], seed: int) -> Followed:
    router = Router(["a", "b", "c"], policy=policy, reward=ACCURACY_ONLY, seed=seed)
    outcomes = random.Random(seed)
    new_best = 0
    detected = None
    for query in range(4000):
        draws = [outcomes.random() for _ in range(3)]
        decision = router.select("only")
        arm = "abc".index(decision.model)
        router.feedback(decision, accuracy=float(draws[arm] < accuracies(query)[arm]))
        new_best += query >= 3500 and arm == 2
        if detected is None and query >= 2000 and router.stats().changes:
            detected = query
    return Followed(new_best / 500, detected)


def summary(outcomes: list[Outcome]) -> str:
    aggregate = [o.aggregate for o in outcomes]
    locked = sum(o.best_picks <= LOCKED_OUT for o in outcomes)
    return (
        f"{statistics.fmean(aggregate):.1%} | "
        f"{statistics.fmean(o.per_context for o in outcomes):.1%} | "
        f"{min(aggregate):.1%} | {locked} | {sum(o.changes for o in outcomes)}"
    )


def drift_summary(runs: list[Followed]) -> str:
    shares = [r.share for r in runs]
    delays = [r.detected - 2000 for r in runs if r.detected is not None]
    detection = f", detected after {statistics.median(delays):.0f}" if delays else ""
    return (
        f"{sum(s > 0.5 for s in shares)}/{len(shares)} ({statistics.fmean(shares):.0%}{detection})"
    )


def warm_start(data: Path, seeds: int) -> None:
    """The default cold and warm started from RouterBench's train split, replayed on its test
    split: gap closed over the first 300 and all 3,000 queries, and the answers gained."""
    train, test = routerbench_split(data)
    print(
        f"\nWarm start ({seeds} sessions, RouterBench test split; warm: Router.warm_start of the"
        " train split, weight 10): aggregate gap closed over the first 300 queries | over "
        "3,000 | correct answers in 3,000 (mean)"
    )
    print("| start | first 300 | 3,000 | correct answers |")
    print("|---|---|---|---|")
    for name, files in (("cold", None), ("warm", train)):
        short = [session(UCB(), test, seed, files, queries=300) for seed in range(seeds)]
        full = [session(UCB(), test, seed, files) for seed in range(seeds)]
        print(
            f"| {name} | {statistics.fmean(o.aggregate for o in short):.1%} "
            f"| {statistics.fmean(o.aggregate for o in full):.1%} "
            f"| {statistics.fmean(o.reward for o in full):.0f} |",
            flush=True,
        )


#: The off-policy world: per context, each model's accuracy (Bernoulli outcomes).
OPE_WORLD = {"math": (0.9, 0.6, 0.3), "chat": (0.7, 0.75, 0.6)}


def coverage(seeds: int, decisions: int = 3000) -> None:
    """Logs written by the default ``UCB()``: does ``pickllm evaluate`` estimate every fixed
    model, and how often do its 95% intervals (IPS, SNIPS, DR) hold the truth?"""
    import tempfile

    from pickllm.evaluate import evaluate

    models = ("a", "b", "c")
    truth = {
        m: statistics.fmean(accuracies[j] for accuracies in OPE_WORLD.values())
        for j, m in enumerate(models)
    }
    held = {method: 0 for method in ("ips", "snips", "dr")}
    held_trusted = dict.fromkeys(held, 0)
    estimated = trusted = 0
    for seed in range(seeds):
        outcomes = random.Random(seed)
        with tempfile.TemporaryDirectory() as folder:
            with Router(models, reward=ACCURACY_ONLY, seed=seed, decision_log=folder) as router:
                for q in range(decisions):
                    context = ("math", "chat")[q % 2]
                    d = router.select(context)
                    p = OPE_WORLD[context][models.index(d.model)]
                    router.feedback(d, accuracy=float(outcomes.random() < p))
            result = evaluate(folder, list(models))
        for estimate in result.policies[1:]:
            if not estimate.estimates:
                continue
            estimated += 1
            trusted += estimate.trusted
            for method in held:
                covers = estimate.estimates["accuracy"][method].covers(truth[estimate.label])
                held[method] += covers
                held_trusted[method] += covers and estimate.trusted
    total = seeds * len(models)
    print(
        f"\nOff-policy evaluation of the default's logs ({seeds} logs of {decisions:,} decisions, "
        f"2 contexts, 3 models): fixed models estimated {estimated}/{total}, trusted "
        f"{trusted}/{total}; 95% intervals holding the true accuracy: "
        + ", ".join(f"{m.upper()} {held[m] / max(estimated, 1):.0%}" for m in held)
        + "; among the trusted estimates: "
        + ", ".join(f"{m.upper()} {held_trusted[m] / max(trusted, 1):.0%}" for m in held)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--drift-seeds", type=int, default=20)
    parser.add_argument("--only", help="run only the policies whose label contains this text")
    parser.add_argument(
        "--coverage", action="store_true", help="only the off-policy evaluation of default logs"
    )
    parser.add_argument(
        "--decisions", type=int, default=3000, help="with --coverage: decisions per log"
    )
    args = parser.parse_args()
    # Each detection logs a warning; the table counts them.
    logging.getLogger("pickllm.router").setLevel(logging.ERROR)
    if args.coverage:
        coverage(args.seeds, args.decisions)
        return
    data_sets = {"RouterBench": routerbench(args.data), "scenario": scenario()}
    print(
        f"{args.seeds} sessions of {QUERIES:,} queries per data set, {args.drift_seeds} per drift;"
        " gap closed: aggregate | mean per-context | worst session's aggregate | lock-outs"
        " | restarts (false alarms: the data are stationary)"
    )
    print(
        "| policy | RouterBench: aggregate | per-context | worst | lock-outs | restarts "
        "| scenario: aggregate | per-context | worst | lock-outs | restarts "
        "| drift: sessions following (share) | gradual drift |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, policy in POLICIES:
        if args.only and args.only not in label:
            continue
        start = time.perf_counter()
        cells = [
            summary([session(policy, data, seed) for seed in range(args.seeds)])
            for data in data_sets.values()
        ]
        for change in (abrupt, gradual):
            cells.append(
                drift_summary([drift(policy, change, seed) for seed in range(args.drift_seeds)])
            )
        print(f"| `{label}` | " + " | ".join(cells) + " |", flush=True)
        print(f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    if not args.only:
        warm_start(args.data, args.seeds)


if __name__ == "__main__":
    main()
