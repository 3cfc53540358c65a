"""The ``pickllm`` command line.

``pickllm replay`` shows, before spending a cent, how routing policies would have done on recorded
outcomes: with no arguments on the built-in scenario (no network, no API key), with ``--data`` on
RouterBench files or your own logs in the long format.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pickllm import __version__
from pickllm.config import LearningAutomaton, QLearning, Reward
from pickllm.errors import PickLLMError
from pickllm.replay.engine import Strategy, tables
from pickllm.replay.experiment import Experiment, run_experiment
from pickllm.replay.outcomes import Outcomes


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _rates(text: str) -> list[float | str]:
    out: list[float | str] = []
    for item in text.split(","):
        item = item.strip()
        if item == "sample_average":
            out.append(item)
        elif item:
            out.extend(_floats(item))
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pickllm",
        description="Route LLM queries to the best model per context, learned online.",
    )
    parser.add_argument("--version", action="version", version=f"pickllm {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    replay = commands.add_parser(
        "replay",
        help="replay routing policies on recorded outcomes",
        description=(
            "Replay learners and baselines on recorded outcomes: sessions of queries drawn from "
            "each context, every policy on the same sessions. Without --data, runs the built-in "
            "scenario (figures from RouterBench and llmperf)."
        ),
    )
    data = replay.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        action="append",
        metavar="PATH",
        help="RouterBench CSV/pickle file or folder, or a long-format JSONL/CSV "
        "(repeatable); default: the built-in scenario",
    )
    data.add_argument("--format", choices=("auto", "routerbench", "long"), default="auto")
    data.add_argument(
        "--llmperf",
        type=Path,
        metavar="DIR",
        help="llmperf individual/ folder, for data without latency (RouterBench)",
    )
    data.add_argument("--models", nargs="+", metavar="MODEL", help="the pool (default: all)")
    data.add_argument("--contexts", nargs="+", metavar="CONTEXT", help="contexts (default: all)")
    policies = replay.add_argument_group("policies")
    policies.add_argument(
        "--policies",
        default="automaton,q-learning",
        help="learner families: automaton, q-learning (default: both)",
    )
    policies.add_argument(
        "--learning-rates",
        type=_floats,
        default=[0.01, 0.05, 0.1, 0.3],
        help="automaton learning rates (default: 0.01,0.05,0.1,0.3)",
    )
    policies.add_argument(
        "--q-learning-rates",
        type=_rates,
        default=[0.1, "sample_average"],
        help="Q-learning step sizes, numbers or sample_average",
    )
    policies.add_argument("--epsilon", type=float, default=0.2)
    policies.add_argument("--epsilon-decay", type=float, default=0.98)
    policies.add_argument("--epsilon-min", type=float, default=0.02)
    policies.add_argument(
        "--threshold", type=float, default=0.99, help="automaton convergence threshold"
    )
    run = replay.add_argument_group("sessions and reward")
    run.add_argument("--sessions", type=int, default=200, help="sessions per context and policy")
    run.add_argument("--queries", type=int, default=200, help="queries per session")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--weights",
        type=_floats,
        default=[1.0, 0.5, 0.5],
        help="reward weights accuracy,cost,latency (default: 1,0.5,0.5)",
    )
    run.add_argument("--max-cost", type=float, default=0.01, help="USD per query (default 0.01)")
    run.add_argument("--max-latency", type=float, default=10.0, help="seconds (default 10)")
    run.add_argument("--reward-form", choices=("linear", "paper"), default="linear")
    output = replay.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=Path("pickllm-replay"),
        help="folder for results.json and the figures (default: ./pickllm-replay)",
    )
    output.add_argument("--no-figures", action="store_true")
    output.add_argument("--no-progress", action="store_true")
    return parser


def _load(args: argparse.Namespace) -> tuple[Outcomes, str]:
    from pickllm.replay import LatencyModel, load_long, load_routerbench
    from pickllm.replay.scenario import Scenario

    if not args.data:
        scenario = Scenario.default()
        return scenario.outcomes(rows=1000, seed=args.seed), "built-in scenario (default.json)"
    paths = list(args.data)
    kind = args.format
    if kind == "auto":
        first = paths[0]
        kind = (
            "long"
            if first.suffix == ".jsonl"
            or (first.suffix == ".csv" and "eval_name" not in first.open().readline())
            else "routerbench"
        )
    loader = load_routerbench if kind == "routerbench" else load_long
    outcomes, report = loader(paths if len(paths) > 1 else paths[0])
    print(report.summary(), file=sys.stderr)
    if not outcomes.latency_complete:
        if args.llmperf is None:
            raise PickLLMError(
                "this data has no latency: pass --llmperf DIR (llmperf's individual/ folder) "
                "to replay real per-request latencies"
            )
        outcomes = LatencyModel.from_llmperf(args.llmperf).apply(outcomes, seed=args.seed)
    return outcomes, ", ".join(str(p) for p in paths)


def _learners(args: argparse.Namespace) -> list[Strategy]:
    families = {f.strip() for f in args.policies.split(",") if f.strip()}
    unknown = families - {"automaton", "q-learning"}
    if unknown:
        raise PickLLMError(f"--policies: unknown {sorted(unknown)}; use automaton, q-learning")
    learners = []
    if "automaton" in families:
        learners += [
            Strategy.learner(LearningAutomaton(rate, threshold=args.threshold))
            for rate in args.learning_rates
        ]
    if "q-learning" in families:
        learners += [
            Strategy.learner(
                QLearning(
                    rate, args.epsilon, args.epsilon_decay, min(args.epsilon_min, args.epsilon)
                )
            )
            for rate in args.q_learning_rates
        ]
    return learners


def _mixed(learners: list[Strategy]) -> list[Strategy]:
    """For the mixed run: the automaton with the learning rate nearest 0.1 and the last
    Q-learning setting, each compared per-context against global."""
    automata = [s for s in learners if s.spec["policy"]["kind"] == "learning_automaton"]
    q = [s for s in learners if s.spec["policy"]["kind"] == "q_learning"]
    nearest = [min(automata, key=lambda s: abs(s.spec["policy"]["learning_rate"] - 0.1))]
    return (nearest if automata else []) + q[-1:]


class _ProgressBar:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, done: int, total: int) -> None:
        if self.enabled:
            filled = round(30 * done / total)
            end = "\n" if done == total else ""
            print(
                f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} runs",
                end=end,
                file=sys.stderr,
                flush=True,
            )


def replay(args: argparse.Namespace) -> int:
    from pickllm.replay.summary import comparisons, format_summary

    if len(args.weights) != 3:
        raise PickLLMError(f"--weights takes accuracy,cost,latency, got {args.weights}")
    reward = Reward(
        accuracy=args.weights[0],
        cost=args.weights[1],
        latency=args.weights[2],
        max_cost=args.max_cost,
        max_latency=args.max_latency,
        form=args.reward_form,
    )
    started = time.perf_counter()
    outcomes, source = _load(args)
    if args.models or args.contexts:
        outcomes = outcomes.select(models=args.models, contexts=args.contexts)
    contexts = tables(outcomes)
    print(
        f"replaying {source}: " + ", ".join(f"{t.name} ({t.rows} queries)" for t in contexts),
        file=sys.stderr,
    )
    learners = _learners(args)
    experiment: Experiment = run_experiment(
        contexts,
        reward,
        learners=learners,
        mixed=_mixed(learners),
        sessions=args.sessions,
        queries=args.queries,
        seed=args.seed,
        trace_rates=args.learning_rates,
        progress=_ProgressBar(not args.no_progress and sys.stderr.isatty()),
    )
    print(format_summary(experiment))
    args.out.mkdir(parents=True, exist_ok=True)
    results = experiment.to_json() | {"source": source, "comparisons": comparisons(experiment)}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    written = [args.out / "results.json"]
    if not args.no_figures:
        from pickllm.replay.figures import write_figures

        try:
            written += write_figures(experiment, args.out)
        except PickLLMError as error:
            print(f"no figures: {error}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"\nwrote {', '.join(str(p) for p in written)} in {elapsed:.1f} s")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # A bare `pickllm` is a usage error, as with git or cargo: help goes to stderr, status 2.
        parser.print_help(sys.stderr)
        return 2
    try:
        return replay(args)
    except (PickLLMError, FileNotFoundError) as error:
        print(f"pickllm {args.command}: error: {error}", file=sys.stderr)
        return 2
