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
    QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02, share=5.0),
    QLearning("sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02, lock=False),
    QLearning(
        "sample_average", epsilon=0.1, epsilon_decay=0.98, epsilon_min=0.02, share=5.0, lock=False
    ),
    ThompsonSampling(),
    ThompsonSampling(discount=0.999),
    ThompsonSampling(discount=0.99),
    ThompsonSampling(share=5.0),
    ThompsonSampling(share=10.0),
    ThompsonSampling(share=20.0),
    ThompsonSampling(discount=0.999, share=10.0),
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
    Exp3(gamma=0.1, share=50.0),
    Exp3(gamma=0.1, share=500.0),
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


def moving_average(values: list[float], width: int) -> list[float]:
    """Mean of the last ``width`` values (fewer at the start) after each value."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - width] if i >= width else 0.0)
        out.append(total / min(i + 1, width))
    return out


def drift_figure(table: Table, seeds: list[int], path: Path) -> None:
    """Moving-average reward of each learner against the new best fixed model's, drift at 2,000:
    what queries-to-recover measures (the first query after which the learner's line stays
    within 5% of the new best's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    change = Drift(at=2000, model=0, accuracy=0.5)
    queries, width = 4500, change.smoothing
    x = range(1, queries + 1)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    best: list[float] = []
    for policy in FIGURE_POLICIES:
        strategy = Strategy.learner(policy)
        runs = run_sessions(
            [table], ACCURACY_ONLY, strategy, queries, seeds, trace=True, drift=change
        )
        own = [moving_average(list(s.rewards[0::2]), width) for s in runs]
        # The new best's rewards depend on the data order only: the same for every learner.
        best = [
            statistics.fmean(q)
            for q in zip(*(moving_average(list(s.rewards[1::2]), width) for s in runs), strict=True)
        ]
        recovered = [
            s.drift.recover for s in runs if s.drift is not None and s.drift.recover is not None
        ]
        recover = f"{statistics.median(recovered):.0f}" if recovered else "never"
        label = f"{strategy.label} (recovers: {recover}, {len(recovered)}/{len(runs)})"
        ax.plot(x, [statistics.fmean(q) for q in zip(*own, strict=True)], label=label, linewidth=1)
    # Accuracy-only reward: the drifted model's mean reward scales with its accuracy.
    after = [
        m.reward * (change.accuracy if i == change.model else 1.0)
        for i, m in enumerate(model_means(table, ACCURACY_ONLY))
    ]
    new_best = table.models[max(range(len(after)), key=after.__getitem__)]
    ax.plot(x, best, color="black", linewidth=1.6, label=f"new best fixed model ({new_best})")
    ax.plot(
        range(change.at + 1, queries + 1),
        [0.95 * b for b in best[change.at :]],
        color="black",
        linestyle=":",
        linewidth=1,
        label="95% of it (recovered when a learner stays above)",
    )
    ax.axvline(change.at, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        f"change: {table.models[0]} loses half its accuracy",
        (change.at, ax.get_ylim()[0]),
        xytext=(4, 4),
        textcoords="offset points",
        fontsize=8,
        color="grey",
    )
    ax.set_xlabel("query")
    ax.set_ylabel(f"reward, moving average of {width} queries")
    ax.set_title(
        f"{table.name}, 3 models, mean of {len(seeds)} sessions; recovers: median queries "
        "to recover (sessions that did)",
        fontsize=9,
    )
    ax.legend(fontsize=7, loc="lower left")
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
