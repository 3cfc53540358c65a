"""``pickllm evaluate``: the command-line face of :func:`pickllm.evaluate.evaluate`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pickllm.config import Reward
from pickllm.errors import PickLLMError

__all__ = ["add_parser", "run"]


def _weights(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected accuracy,cost,latency, got {text!r}") from None
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers accuracy,cost,latency: {text!r}")
    return values


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    formatter_class: type[argparse.HelpFormatter] = argparse.HelpFormatter,
) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="estimate how other policies would have done on a decision log",
        description=(
            "Off-policy evaluation of a decision log written by Router(..., decision_log=DIR): "
            "each candidate's mean reward, accuracy, cost and latency with 95% intervals. "
            "Fixed models by IPS, self-normalized IPS and doubly robust estimators; learners by "
            "rejection-sampling replay. Without --policy: every model of the pool and each "
            "built-in learner at its default settings."
        ),
        formatter_class=formatter_class,
    )
    parser.add_argument(
        "--log", type=Path, required=True, metavar="PATH", help="decision log folder or file"
    )
    parser.add_argument(
        "--policy",
        action="append",
        metavar="SPEC",
        help="a candidate (repeatable): a model name, a learner kind such as "
        "learning_automaton (default settings), or a learner as JSON, e.g. "
        '\'{"kind": "q_learning", "epsilon": 0.1}\'; default: every model and learner',
    )
    parser.add_argument(
        "--weights",
        type=_weights,
        metavar="A,C,L",
        help="reward weights accuracy,cost,latency to judge by; default: the log's reward",
    )
    parser.add_argument(
        "--max-cost",
        type=float,
        default=None,
        help="USD per query counted as fully expensive; default: the log's",
    )
    parser.add_argument(
        "--max-latency",
        type=float,
        default=None,
        help="seconds counted as fully slow; default: the log's",
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=None,
        help="learners: decisions per replayed session; default: a tenth of the records "
        "replay is expected to accept",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the learners' replay")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--figure",
        type=Path,
        metavar="FILE.png",
        help="also draw the estimates with their intervals as a PNG (needs matplotlib)",
    )
    parser.add_argument(
        "--parquet",
        type=Path,
        metavar="FILE",
        help="also export the log as a Parquet table (needs the parquet extra)",
    )


def run(args: argparse.Namespace) -> int:
    from pickllm.evaluate import evaluate, format_evaluation
    from pickllm.evaluate.progress import ProgressBar
    from pickllm.logs import LogStream, export_parquet

    # Read in three passes (the scan on opening, the survey, the estimates), never all at once.
    bar = ProgressBar(passes=3)
    loaded = LogStream(args.log, progress=bar)
    reward = None
    if args.weights is not None or args.max_cost is not None or args.max_latency is not None:
        base = _base_reward(loaded.routers)
        accuracy, cost, latency = args.weights or (base.accuracy, base.cost, base.latency)
        fields = base.model_dump() | {"accuracy": accuracy, "cost": cost, "latency": latency}
        if args.max_cost is not None:
            fields["max_cost"] = args.max_cost
        if args.max_latency is not None:
            fields["max_latency"] = args.max_latency
        reward = Reward(**fields)
    try:
        result = evaluate(loaded, args.policy, reward=reward, horizon=args.horizon, seed=args.seed)
    finally:
        bar.close()
    print(loaded.summary(), file=sys.stderr)
    print(format_evaluation(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    if args.figure is not None:
        from pickllm.evaluate.figure import write_figure

        print(f"wrote {write_figure(result, args.figure)}", file=sys.stderr)
    if args.parquet is not None:
        rows = export_parquet(args.log, args.parquet)
        print(f"wrote {rows} rows to {args.parquet}", file=sys.stderr)
    return 0


def _base_reward(routers: dict[str, dict[str, Any]]) -> Reward:
    """The log's reward, the base that --weights, --max-cost and --max-latency change."""
    for header in routers.values():
        try:
            return Reward(**header["reward"])
        except (PickLLMError, TypeError):
            break
    return Reward()
