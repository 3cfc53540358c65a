"""Why shared state matters, on the recorded data: K replicas sharing what they learn against K
independent replicas (docs/results.md, section 5).

    python scripts/shared_replay.py /work/shared/data --out docs/results/shared

The paper's 4-model pool on RouterBench (latencies from llmperf), per context. A fleet of K
replicas answers a stream of queries, query i by replica i mod K. *Independent*: each replica
learns only from its own queries (today without ``shared=``). *Shared*: every replica learns
from every feedback in fleet order, which is what ``shared=RedisState(...)`` gives once events
are applied (the replication lag, milliseconds, is left out). The figure plots the gap to the
best fixed model (mean reward of the best model minus the fleet's mean reward per window of
queries) against the queries seen by the fleet, averaged over sessions.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from pickllm import LearningAutomaton, Reward, Router
from pickllm.replay.engine import Table, model_means, tables
from pickllm.replay.latency import LatencyModel
from pickllm.replay.routerbench import load_routerbench

POOL = [
    "gpt-4-1106-preview",
    "mistralai/mixtral-8x7b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
]
WINDOW = 100


def session(
    table: Table, reward: Reward, replicas: int, shared: bool, queries: int, seed: int
) -> list[float]:
    rng = random.Random(seed)
    fleet = [
        Router(POOL, policy=LearningAutomaton(0.1), seed=seed * 1000 + k) for k in range(replicas)
    ]
    n = len(POOL)
    rewards = []
    for i in range(queries):
        row = rng.randrange(table.rows)
        decision = fleet[i % replicas].select(table.name)
        j = POOL.index(decision.model)
        cell = row * n + j
        a, c, lat = table.accuracy[cell], table.cost[cell], table.latency[cell]
        rewards.append(reward.compute(accuracy=a, cost=c, latency=lat))
        for k, router in enumerate(fleet):
            if k == i % replicas:
                router.feedback(decision, accuracy=a, cost=c, latency=lat)
            elif shared:
                router.observe(
                    table.name,
                    decision.model,
                    accuracy=a,
                    cost=c,
                    latency=lat,
                    probability=decision.probability,
                )
    return rewards


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, default=Path("docs/results/shared"))
    parser.add_argument("--replicas", type=int, default=4)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=30)
    args = parser.parse_args()
    loaded = load_routerbench(args.data / "routerbench")
    latency = LatencyModel.from_llmperf(args.data / "llmperf" / "individual")
    outcomes = latency.apply(loaded.outcomes.select(models=POOL), seed=0)
    reward = Reward()
    results: dict[str, dict[str, list[float]]] = {}
    for table in tables(outcomes):
        best = max(m.reward for m in model_means(table, reward))
        curves = {}
        for label, shared in (("independent", False), ("shared", True)):
            gaps = [0.0] * (args.queries // WINDOW)
            for s in range(args.sessions):
                r = session(table, reward, args.replicas, shared, args.queries, s)
                for w in range(len(gaps)):
                    window = r[w * WINDOW : (w + 1) * WINDOW]
                    gaps[w] += (best - sum(window) / WINDOW) / args.sessions
            curves[label] = gaps
        results[table.name] = curves
        print(table.name, {k: [round(g, 4) for g in v[::4]] for k, v in curves.items()})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gaps.json").write_text(json.dumps(results, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.2), sharey=True)
    for ax, (name, curves) in zip(axes, results.items(), strict=True):
        x = [(w + 1) * WINDOW for w in range(len(curves["shared"]))]
        for label, gaps in curves.items():
            ax.plot(x, gaps, label=f"{args.replicas} replicas, {label}")
        ax.set_title(name)
        ax.set_xlabel("queries seen by the fleet")
        ax.axhline(0, color="grey", linewidth=0.5)
    axes[0].set_ylabel(f"gap to best fixed (per {WINDOW} queries)")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.out / "sharing.png", dpi=120)


if __name__ == "__main__":
    main()
