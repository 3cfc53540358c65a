"""Compare every learner (2-3 settings each) on replayed data; prints the table of docs/learners.md.

    python benches/learners.py [--data DIR] [--seeds N] [--figure PNG]

Measures, accuracy-only reward, mean over seeds:

* gap closed on RouterBench (``DIR/routerbench``): one router serves the three contexts with
  their queries interleaved, 1,000 queries per context, one learner per context;
* the same on the built-in scenario (default.json, 1,000 rows per context);
* drift: one RouterBench context (arc-challenge) and three models, its best, third and fifth;
  after 2,000 queries the best one's accuracy halves (an outage). Reported: the share of queries
  1,500-2,000 after the change that go to the new best model, the share of sessions where that
  is most of them, and the median queries-to-recover (5% of the new best's moving average over
  200 queries, for good) over the sessions that recovered.
"""

from __future__ import annotations

import argparse
import statistics
from array import array
from pathlib import Path

from pickllm import UCB, Exp3, LearningAutomaton, Policy, QLearning, Reward, ThompsonSampling
from pickllm.replay import load_routerbench
from pickllm.replay.engine import Drift, Strategy, Table, model_means, run_sessions, tables
from pickllm.replay.scenario import Scenario

ACCURACY_ONLY = Reward(accuracy=1.0, cost=0.0, latency=0.0)
PER_CONTEXT = 1000

POLICIES: list[Policy] = [
    LearningAutomaton(0.1),
    LearningAutomaton(0.01),
    QLearning(0.1, epsilon=0.2, epsilon_decay=0.99),
    QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02),
    ThompsonSampling(),
    ThompsonSampling(discount=0.999),
    ThompsonSampling(discount=0.99),
    UCB(share=0.0),
    UCB(exploration=1.0, share=0.0),
    UCB(exploration=0.25, share=0.0),
    UCB(discount=0.999, share=0.0),
    UCB(bound="kl", share=0.0),
    UCB(bound="kl", exploration=1.0, share=0.0),
    UCB(share=2.0),
    UCB(),
    UCB(share=20.0),
    UCB(bound="kl"),
    Exp3(gamma=0.1),
    Exp3(gamma=0.2),
    Exp3(gamma=0.1, discount=0.999),
]


def routerbench(data: Path) -> list[Table]:
    """RouterBench's contexts; it has no latency, which an accuracy-only reward ignores."""
    outcomes, _ = load_routerbench(sorted((data / "routerbench").glob("*.csv")))
    complete = outcomes.complete(require_latency=False)
    return [
        Table(b.name, complete.models, b.accuracy, b.cost, array("d", bytes(8 * len(b.accuracy))))
        for b in complete.contexts
    ]


def scenario() -> list[Table]:
    return tables(Scenario.default().outcomes(rows=1000, seed=0))


def three_of(table: Table) -> Table:
    """The table's best, third and fifth model by mean accuracy, best first."""
    means = model_means(table, ACCURACY_ONLY)
    order = sorted(range(len(means)), key=lambda i: -means[i].reward)
    keep = [order[0], order[2], order[4]]
    m = len(table.models)

    def column(values: array[float]) -> array[float]:
        return array("d", [values[r * m + i] for r in range(table.rows) for i in keep])

    return Table(
        table.name,
        tuple(table.models[i] for i in keep),
        column(table.accuracy),
        column(table.cost),
        column(table.latency),
    )


def gap_closed(strategy: Strategy, tables: list[Table], seeds: list[int]) -> float:
    sessions = run_sessions(tables, ACCURACY_ONLY, strategy, PER_CONTEXT * len(tables), seeds)
    return statistics.fmean(s.gap_closed for s in sessions)


def drift(strategy: Strategy, table: Table, seeds: list[int]) -> tuple[float, float, str]:
    change = Drift(at=2000, model=0, accuracy=0.5, smoothing=200, window=(1500, 2000))
    sessions = run_sessions([table], ACCURACY_ONLY, strategy, 4500, seeds, drift=change)
    after = [s.drift for s in sessions if s.drift is not None]
    share = statistics.fmean(a.window_best_share for a in after)
    most = statistics.fmean(a.window_best_share > 0.5 for a in after)
    recovered = [a.recover for a in after if a.recover is not None]
    median = f"{statistics.median(recovered):.0f}" if recovered else "-"
    return share, most, f"{median} ({len(recovered)}/{len(after)})"


#: The learners the drift figure follows.
FIGURE_POLICIES: list[Policy] = [
    LearningAutomaton(0.1),
    QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02),
    ThompsonSampling(),
    UCB(),
    Exp3(gamma=0.1),
]


def drift_figure(table: Table, seeds: list[int], path: Path) -> None:
    """Mean probability of choosing the new best model before each query, drift at 2,000."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    change = Drift(at=2000, model=0, accuracy=0.5)
    after = model_means(table, ACCURACY_ONLY)
    # The new best: the best of the others (model 0, the old best, has lost half its accuracy).
    new_best = max(range(1, len(after)), key=lambda i: after[i].reward)
    width, queries = len(table.models), 4500
    fig, ax = plt.subplots(figsize=(8, 4))
    for policy in FIGURE_POLICIES:
        strategy = Strategy.learner(policy)
        runs = run_sessions(
            [table], ACCURACY_ONLY, strategy, queries, seeds, trace=True, drift=change
        )
        curve = [
            statistics.fmean(s.trace[q * width + new_best] for s in runs) for q in range(queries)
        ]
        ax.plot(range(1, queries + 1), curve, label=strategy.label)
    ax.axvline(change.at, color="grey", linestyle="--", linewidth=1)
    ax.axvspan(change.at + 1500, change.at + 2000, color="grey", alpha=0.15)
    ax.set_xlabel("query")
    ax.set_ylabel("P(choose the new best model)")
    ax.set_title(
        f"{table.name}: {table.models[0]} loses half its accuracy at query {change.at} "
        f"(mean of {len(seeds)} sessions)",
        fontsize=9,
    )
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8, loc="center left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--figure", type=Path, help="also draw the drift figure to this PNG")
    args = parser.parse_args()
    seeds = list(range(args.seeds))
    bench, built_in = routerbench(args.data), scenario()
    shifted = three_of(bench[0])
    if args.figure is not None:
        drift_figure(shifted, seeds, args.figure)
    print(
        "| policy | gap closed, RouterBench | gap closed, scenario "
        "| drift: picks of the new best, q 1,500-2,000 | sessions where most "
        "| queries to recover (recovered) |"
    )
    print("|---|---|---|---|---|---|")
    for policy in POLICIES:
        strategy = Strategy.learner(policy)
        share, most, recover = drift(strategy, shifted, seeds)
        print(
            f"| `{strategy.label}` | {gap_closed(strategy, bench, seeds):.1%} "
            f"| {gap_closed(strategy, built_in, seeds):.1%} | {share:.1%} | {most:.0%} "
            f"| {recover} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
