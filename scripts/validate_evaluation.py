"""Validate pickllm's off-policy estimators on RouterBench: bias and 95% interval coverage.

    python scripts/validate_evaluation.py ../shared/data --seeds 200 --out docs/results/evaluation

For each seed and each logging policy (uniform random, and a learning automaton with its own
drifting propensities), a real Router with ``decision_log=`` routes ``--records`` queries: each
query's context is drawn uniformly from RouterBench's three tasks and its row uniformly from
that task's rows (4-model pool, latency from llmperf, pickllm's default reward). ``evaluate``
then estimates every fixed model (IPS, SNIPS, DR) and each built-in learner at its default
settings (rejection-sampling replay, ``--horizon`` decisions per session). Each estimate is
compared with the target's true value: a fixed model's mean reward over the tables (exact), a
learner's mean reward over ``--horizon`` queries from a fresh start by the replay engine
(``--truth-sessions`` sessions, whose own error is reported). Writes summary.txt and
results.json to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from pickllm import LearningAutomaton, Policy, QLearning, Reward, Router
from pickllm.evaluate import builtin_policies, evaluate
from pickllm.evaluate.candidates import FixedModel, label
from pickllm.replay import LatencyModel, load_routerbench
from pickllm.replay.engine import Strategy, Table, model_means, run_sessions, tables

POOL = (
    "gpt-4-1106-preview",
    "mistralai/mixtral-8x7b-chat",
    "meta/llama-2-70b-chat",
    "mistralai/mistral-7b-chat",
)
LOGGERS: dict[str, Policy] = {
    "uniform": QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False),
    "automaton lr=0.01": LearningAutomaton(0.01, lock=False),
}


def load(data: Path) -> list[Table]:
    outcomes, _ = load_routerbench(data / "routerbench")
    outcomes = outcomes.select(models=list(POOL))
    outcomes = LatencyModel.from_llmperf(data / "llmperf" / "individual").apply(outcomes, seed=0)
    return tables(outcomes)


def write_log(folder: Path, logger: Policy, data: list[Table], records: int, seed: int) -> None:
    rng = random.Random(seed)
    k = len(POOL)
    with Router(POOL, policy=logger, seed=seed, decision_log=folder) as router:
        for _ in range(records):
            table = data[rng.randrange(len(data))]
            row = rng.randrange(table.rows)
            d = router.select(table.name)
            i = row * k + POOL.index(d.model)
            router.feedback(
                d, accuracy=table.accuracy[i], cost=table.cost[i], latency=table.latency[i]
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the shared data folder (routerbench/, llmperf/)")
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--records", type=int, default=3000)
    parser.add_argument("--horizon", type=int, default=50)
    parser.add_argument("--truth-sessions", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path("docs/results/evaluation"))
    args = parser.parse_args()
    started = time.perf_counter()
    reward = Reward()
    data = load(args.data)
    truths: dict[str, float] = {}
    truth_errors: dict[str, float] = {}
    means = [model_means(t, reward) for t in data]
    for j, model in enumerate(POOL):
        truths[model] = statistics.fmean(m[j].reward for m in means)
        truth_errors[model] = 0.0
    for policy in builtin_policies():
        sessions = run_sessions(
            data, reward, Strategy.learner(policy), args.horizon, range(args.truth_sessions)
        )
        values = [s.mean_reward for s in sessions]
        truths[label(policy)] = statistics.fmean(values)
        truth_errors[label(policy)] = statistics.stdev(values) / math.sqrt(len(values))
    candidates = [FixedModel(m) for m in POOL] + builtin_policies()
    # (logger, target, method) -> per-seed (estimate, low, high)
    found: dict[tuple[str, str, str], list[tuple[float, float, float]]] = defaultdict(list)
    missing: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, logger in LOGGERS.items():
        for seed in range(args.seeds):
            with tempfile.TemporaryDirectory() as folder:
                write_log(Path(folder), logger, data, args.records, seed)
                result = evaluate(folder, candidates, horizon=args.horizon, seed=seed)
            for policy in result.policies[1:]:
                if policy.warning and not policy.estimates:
                    missing[(name, policy.label)].append(policy.warning)
                for method, e in policy.estimates.get("reward", {}).items():
                    found[(name, policy.label, method)].append((e.value, e.low, e.high))
            print(f"\r{name}: seed {seed + 1}/{args.seeds}", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    rows = []
    for (name, target, method), runs in found.items():
        truth = truths[target]
        errors = [v - truth for v, _, _ in runs]
        finite = [(lo, hi) for _, lo, hi in runs if math.isfinite(lo) and math.isfinite(hi)]
        rows.append(
            {
                "logger": name,
                "target": target,
                "method": method,
                "truth": truth,
                "truth_stderr": truth_errors[target],
                "runs": len(runs),
                "bias": statistics.fmean(errors),
                "bias_stderr": statistics.stdev(errors) / math.sqrt(len(errors)),
                "rmse": math.sqrt(statistics.fmean(e * e for e in errors)),
                "coverage": sum(lo <= truth <= hi for _, lo, hi in runs) / len(runs),
                "half_width": statistics.fmean((hi - lo) / 2 for lo, hi in finite),
            }
        )
    for (name, target), warnings in missing.items():
        rows.append(
            {
                "logger": name,
                "target": target,
                "method": "-",
                "runs": 0,
                "warnings": len(warnings),
                "example": warnings[0],
            }
        )
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    results = {"settings": settings, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    lines = [
        f"off-policy evaluation on RouterBench: {args.seeds} seeds x {args.records} logged "
        f"decisions per logger, learners over {args.horizon} decisions",
        "",
        "| logger | target | method | truth | bias ± se | RMSE | 95% coverage | half-width |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["runs"] == 0:
            lines.append(
                f"| {r['logger']} | {r['target']} | no estimate ({r['warnings']} of "
                f"{args.seeds} seeds) | | | | | |"
            )
            continue
        lines.append(
            f"| {r['logger']} | {r['target']} | {r['method']} | {r['truth']:.4f} | "
            f"{r['bias']:+.4f} ± {r['bias_stderr']:.4f} | {r['rmse']:.4f} | "
            f"{100 * r['coverage']:.1f}% | {r['half_width']:.4f} |"
        )
    lines += ["", f"{time.perf_counter() - started:.0f} s"]
    (args.out / "summary.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
