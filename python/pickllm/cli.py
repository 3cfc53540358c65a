"""The ``pickllm`` command line.

``pickllm replay`` shows, before spending a cent, how routing policies would have done on recorded
outcomes: with no arguments on the built-in scenario (no network, no API key), with ``--data`` on
RouterBench files or your own logs in the long format. ``pickllm replay --contexts prompts``
compares one global context, the data's labels and contexts discovered from the prompts.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from array import array
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from pickllm import __version__
from pickllm._outputs import prepare_output_folder
from pickllm.config import UCB, Exp3, LearningAutomaton, Policy, QLearning, Reward, ThompsonSampling
from pickllm.contexts import PromptContexts
from pickllm.errors import PickLLMError
from pickllm.evaluate.command import add_parser as add_evaluate_parser
from pickllm.evaluate.command import run as run_evaluate
from pickllm.replay.engine import Drift, Strategy, Table, tables
from pickllm.replay.experiment import Experiment, default_learner, run_experiment
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


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _profile(text: str) -> tuple[str, str]:
    model, sep, profile = text.rpartition("=")
    if not sep or not model or not profile:
        raise argparse.ArgumentTypeError(f"expected MODEL=PROFILE, got {text!r}")
    return model, profile


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default where it has one (not None, an empty list or a flag's False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        # Identity, not ==: a default of 0 is a default to show, False a flag's absence.
        if default is None or default is False or default is argparse.SUPPRESS or default == []:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit 2: the problem, and where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
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
        formatter_class=_Help,
    )
    data = replay.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        action="append",
        metavar="PATH",
        help="RouterBench CSV/pickle file or folder, or a long-format JSONL/CSV "
        "(repeatable); none: the built-in scenario",
    )
    data.add_argument(
        "--format",
        choices=("auto", "routerbench", "long"),
        default="auto",
        help="the data's format; auto: long for .jsonl and for CSV without an eval_name column",
    )
    data.add_argument(
        "--llmperf",
        type=Path,
        metavar="DIR",
        help="llmperf individual/ folder: real per-request latencies for data without latency "
        "(RouterBench); not needed when the latency weight is 0",
    )
    data.add_argument(
        "--latency-profile",
        type=_profile,
        action="append",
        default=[],
        metavar="MODEL=PROFILE",
        help="with --llmperf: the llmperf profile (file name without .json, e.g. groq_70b) "
        "standing for a model the built-in mapping lacks (repeatable)",
    )
    data.add_argument(
        "--default-latency-profile",
        metavar="PROFILE",
        help="with --llmperf: the profile of every model without one",
    )
    data.add_argument("--models", nargs="+", metavar="MODEL", help="the pool; none: all")
    data.add_argument(
        "--only-contexts", nargs="+", metavar="CONTEXT", help="the data's contexts; none: all"
    )
    contexts = replay.add_argument_group("contexts from prompts")
    contexts.add_argument(
        "--contexts",
        type=_contexts_kind,
        metavar="prompts",
        help="prompts: compare one global context, the data's labels (eval_name) and contexts "
        "discovered from the prompt column, with the default learner (RouterBench-format "
        "--data; docs/contexts.md)",
    )
    contexts.add_argument(
        "--warmup",
        type=int,
        default=PromptContexts.model_fields["warmup"].default,
        help="with --contexts prompts: PromptContexts(warmup)",
    )
    contexts.add_argument(
        "--max-clusters",
        type=int,
        default=PromptContexts.model_fields["max_clusters"].default,
        help="with --contexts prompts: PromptContexts(max_clusters)",
    )
    policies = replay.add_argument_group("policies")
    policies.add_argument(
        "--policies",
        default="default,automaton,q-learning",
        help="learner families, comma-separated: default (the learner Router() uses, "
        "pickllm.default_policy()), automaton, q-learning (the paper's), thompson, ucb, exp3",
    )
    policies.add_argument(
        "--learning-rates",
        type=_floats,
        default="0.01,0.05,0.1,0.3",
        help="automaton learning rates, comma-separated",
    )
    policies.add_argument(
        "--q-learning-rates",
        type=_rates,
        default="0.1,sample_average",
        help="Q-learning step sizes, comma-separated numbers or sample_average",
    )
    policies.add_argument(
        "--epsilon", type=float, default=0.2, help="Q-learning's initial exploration rate"
    )
    policies.add_argument(
        "--epsilon-decay",
        type=float,
        default=0.98,
        help="Q-learning: exploration is multiplied by this after each feedback",
    )
    policies.add_argument(
        "--epsilon-min", type=float, default=0.02, help="Q-learning's floor of exploration"
    )
    policies.add_argument(
        "--threshold", type=float, default=0.99, help="automaton convergence threshold"
    )
    policies.add_argument(
        "--drift",
        type=_drift,
        metavar="AT:MODEL:ACCURACY[:COST]",
        help="at query AT (0-based) of every session, multiply model MODEL's accuracy by "
        "ACCURACY (an outage) and its cost by COST (a price cut); reports queries-to-recover",
    )
    run = replay.add_argument_group("sessions and reward")
    run.add_argument(
        "--sessions",
        type=_positive,
        help="sessions per context and policy (default: 200; with --contexts prompts: "
        "sessions of all contexts interleaved, default 20)",
    )
    run.add_argument(
        "--queries",
        type=_positive,
        help="queries per session (default: 200; with --contexts prompts: every row)",
    )
    run.add_argument(
        "--seed", type=int, default=0, help="fixes the sessions' queries and every random choice"
    )
    run.add_argument(
        "--weights",
        type=_floats,
        default="1,0.5,0.5",
        metavar="A,C,L",
        help="reward weights accuracy,cost,latency",
    )
    run.add_argument(
        "--max-cost", type=float, default=0.01, help="USD per query counted as fully expensive"
    )
    run.add_argument(
        "--max-latency", type=float, default=10.0, help="seconds counted as fully slow"
    )
    run.add_argument(
        "--reward-form",
        choices=("linear", "paper"),
        default="linear",
        help="how the weights combine (docs/design.md)",
    )
    output = replay.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=Path("pickllm-replay"),
        help="folder for summary.txt, results.json and the figures",
    )
    output.add_argument("--no-figures", action="store_true", help="skip the PNG figures")
    output.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_evaluate_parser(commands, _Help)
    serve = commands.add_parser(
        "serve",
        help="run the OpenAI-compatible gateway (needs the server extra)",
        description="Serve routers and models of a TOML config over an OpenAI-compatible API.",
        formatter_class=_Help,
    )
    serve.add_argument(
        "--config", type=Path, required=True, metavar="PATH", help="the gateway's TOML config"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=_port, default=4000, help="TCP port to listen on")
    serve.add_argument("--workers", type=_positive, default=1, help="worker processes")
    return parser


def _contexts_kind(text: str) -> str:
    if text != "prompts":
        raise argparse.ArgumentTypeError(
            f"the only kind is 'prompts' (contexts discovered from prompts), got {text!r}; to "
            "replay some of the data's contexts, use --only-contexts NAME..."
        )
    return text


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {value}")
    return value


def _load(args: argparse.Namespace) -> tuple[Outcomes, str]:
    """The data the options name, restricted to --models and --only-contexts, with latencies."""
    from pickllm.replay import load_long, load_routerbench
    from pickllm.replay.longformat import is_decision_log
    from pickllm.replay.scenario import Scenario

    if not args.data:
        scenario = Scenario.default()
        outcomes = scenario.outcomes(rows=1000, seed=args.seed)
        return _select(outcomes, args), "built-in scenario (default.json)"
    paths = list(args.data)
    logs = [str(p) for p in paths if is_decision_log(p)]
    if logs:
        raise PickLLMError(
            f"{', '.join(logs)}: a decision log holds one model's outcome per query, which "
            "replay cannot compare policies on; use pickllm evaluate --log PATH"
        )
    kind = _sniff(paths[0]) if args.format == "auto" else args.format
    loader = load_routerbench if kind == "routerbench" else load_long
    outcomes, report = loader(paths if len(paths) > 1 else paths[0])
    print(report.summary(), file=sys.stderr)
    outcomes = _select(outcomes, args)
    if not outcomes.latency_complete:
        outcomes = _with_latency(outcomes, args)
    return outcomes, ", ".join(str(p) for p in paths)


def _sniff(path: Path) -> str:
    """long for .jsonl and for a CSV whose header lacks RouterBench's eval_name column."""
    if path.suffix == ".jsonl":
        return "long"
    if path.suffix == ".csv" and path.is_file():
        with path.open("rb") as file:  # bytes: the loader reports what is not UTF-8
            return "routerbench" if b"eval_name" in file.readline() else "long"
    return "routerbench"


def _select(outcomes: Outcomes, args: argparse.Namespace) -> Outcomes:
    for option, wanted, present in (
        ("--models", args.models, outcomes.models),
        ("--only-contexts", args.only_contexts, outcomes.context_names),
    ):
        unknown = [name for name in wanted or () if name not in present]
        if unknown:
            raise PickLLMError(f"{option}: not in the data: {unknown}; it has {list(present)}")
    if args.models or args.only_contexts:
        outcomes = outcomes.select(models=args.models, contexts=args.only_contexts)
    if len(outcomes.models) < 2:
        raise PickLLMError(
            f"only one model ({outcomes.models[0]}): every policy would pick it; give the "
            "replay two or more (--models)"
        )
    return outcomes


def _with_latency(outcomes: Outcomes, args: argparse.Namespace) -> Outcomes:
    """Data without (some) latencies: none needed when the reward ignores latency, else
    llmperf's real per-request latencies, each model through a provider profile."""
    from dataclasses import replace

    from pickllm.replay import DEFAULT_MODEL_PROFILES, LatencyModel

    if args.weights[2] == 0:
        print(
            "this data has no latency and the reward ignores it (latency weight 0): "
            "latencies are replayed as 0",
            file=sys.stderr,
        )
        for block in outcomes.contexts:
            # Observed cells get latency 0; a missing cell (mask 0) stays NaN throughout.
            zeros = array("d", (0.0 if present else math.nan for present in block.mask))
            outcomes = outcomes.replace_context(replace(block, latency=zeros))
        return outcomes
    if args.llmperf is None:
        raise PickLLMError(
            "this data has no latency and the reward weighs it: pass --llmperf DIR (llmperf's "
            "individual/ folder) to replay real per-request latencies, or give latency no "
            "weight (--weights A,C,0)"
        )
    profiles = dict(DEFAULT_MODEL_PROFILES) | dict(args.latency_profile)
    unmapped = [m for m in outcomes.models if m not in profiles]
    if unmapped and args.default_latency_profile is None:
        raise PickLLMError(
            f"no latency profile for {unmapped}: pass --latency-profile MODEL=PROFILE for each, "
            "or --default-latency-profile PROFILE (profiles: the file names in --llmperf, "
            "without .json)"
        )
    model = LatencyModel.from_llmperf(
        args.llmperf, profiles, default_profile=args.default_latency_profile
    )
    return model.apply(outcomes, seed=args.seed)


def _note_short_contexts(contexts: list[Table], args: argparse.Namespace) -> None:
    """Fewer complete queries than --queries: sessions repeat queries; say so."""
    for table in contexts:
        if table.rows < args.queries:
            print(
                f"note: context {table.name} has {table.rows} complete queries, fewer than "
                f"--queries {args.queries}: each session repeats them (reshuffled)",
                file=sys.stderr,
            )


def _learners(args: argparse.Namespace) -> list[Strategy]:
    families = {f.strip() for f in args.policies.split(",") if f.strip()}
    unknown = families - set(_FAMILIES) - {"default", "automaton", "q-learning"}
    if unknown:
        raise PickLLMError(
            f"--policies: unknown {sorted(unknown)}; use default, automaton, q-learning, "
            + ", ".join(_FAMILIES)
        )
    learners = []
    if "default" in families:
        learners.append(default_learner())
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
    for family, settings in _FAMILIES.items():
        if family in families:
            learners += [Strategy.learner(policy) for policy in settings]
    # The default learner is also a setting of its family: run it once, under its default label.
    unique = {json.dumps(s.spec, sort_keys=True): s for s in reversed(learners)}
    return [s for s in learners if unique[json.dumps(s.spec, sort_keys=True)] is s]


#: The settings each newer family is replayed with (docs/learners.md compares them).
_FAMILIES: dict[str, list[Policy]] = {
    "thompson": [ThompsonSampling(), ThompsonSampling(discount=0.999)],
    "ucb": [UCB(), UCB(share=0.0), UCB(exploration=1.0), UCB(discount=0.999)],
    "exp3": [Exp3(gamma=0.1), Exp3(gamma=0.1, discount=0.999)],
}


def _drift_summary(experiment: Experiment, drift: Drift) -> str:
    lines = [
        f"\nafter the drift at query {drift.at} (model {drift.model}: accuracy x{drift.accuracy:g},"
        f" cost x{drift.cost:g}), all contexts:",
        f"  {'policy':40} {'recovered':>9} {'queries to recover':>18} {'new best share':>14}",
    ]
    for row in experiment.pooled():
        m = row.metrics
        lines.append(
            f"  {row.label:40} {m['recovered'].mean:9.0%} {m['queries_to_recover'].mean:18.0f}"
            f" {m['new_best_share'].mean:14.1%}"
        )
    return "\n".join(lines)


def _drift(text: str) -> Drift:
    parts = text.split(":")
    try:
        if len(parts) not in (3, 4):
            raise ValueError
        return Drift(
            at=int(parts[0]),
            model=int(parts[1]),
            accuracy=float(parts[2]),
            cost=float(parts[3]) if len(parts) == 4 else 1.0,
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected AT:MODEL:ACCURACY[:COST] (integers, then factors), got {text!r}"
        ) from None


def _mixed(learners: list[Strategy]) -> list[Strategy]:
    """For the mixed run: the automaton with the learning rate nearest 0.1 and the last
    Q-learning setting, each compared per-context against global."""
    automata = [s for s in learners if s.spec["policy"]["kind"] == "learning_automaton"]
    q = [s for s in learners if s.spec["policy"]["kind"] == "q_learning"]
    newer = [s for s in learners if s not in automata and s not in q]
    nearest = automata and [
        min(automata, key=lambda s: abs(s.spec["policy"]["learning_rate"] - 0.1))
    ]
    return nearest + q[-1:] + newer[:1]


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


def _reward(args: argparse.Namespace) -> Reward:
    if len(args.weights) != 3:
        raise PickLLMError(f"--weights takes accuracy,cost,latency, got {args.weights}")
    return Reward(
        accuracy=args.weights[0],
        cost=args.weights[1],
        latency=args.weights[2],
        max_cost=args.max_cost,
        max_latency=args.max_latency,
        form=args.reward_form,
    )


def replay(args: argparse.Namespace) -> int:
    from pickllm.replay.summary import comparisons, format_summary

    if args.contexts == "prompts":
        return _replay_prompt_contexts(args)
    args.sessions = args.sessions or 200
    args.queries = args.queries or 200
    reward = _reward(args)
    prepare_output_folder(args.out, "--out")
    learners = _learners(args)
    started = time.perf_counter()
    outcomes, source = _load(args)
    contexts = tables(outcomes)
    _note_short_contexts(contexts, args)
    print(
        f"replaying {source}: " + ", ".join(f"{t.name} ({t.rows} queries)" for t in contexts),
        file=sys.stderr,
    )
    experiment: Experiment = run_experiment(
        contexts,
        reward,
        learners=learners,
        mixed=_mixed(learners),
        sessions=args.sessions,
        queries=args.queries,
        seed=args.seed,
        trace_rates=args.learning_rates,
        drift=args.drift,
        progress=_ProgressBar(not args.no_progress and sys.stderr.isatty()),
    )
    summary = format_summary(experiment)
    if args.drift is not None:
        summary += "\n" + _drift_summary(experiment, args.drift)
    print(summary)
    (args.out / "summary.txt").write_text(summary + "\n")
    results = experiment.to_json() | {"source": source, "comparisons": comparisons(experiment)}
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    written = [args.out / "summary.txt", args.out / "results.json"]
    if not args.no_figures:
        from pickllm.replay.figures import write_figures

        try:
            written += write_figures(experiment, args.out)
        except PickLLMError as error:
            print(f"no figures: {error}", file=sys.stderr)
    elapsed = time.perf_counter() - started
    print(f"\nwrote {', '.join(str(p) for p in written)} in {elapsed:.1f} s")
    return 0


#: Options of the policy replay that ``--contexts prompts`` does not use, with their defaults.
_POLICY_REPLAY_ONLY: dict[str, tuple[str, object]] = {
    "--llmperf": ("llmperf", None),
    "--latency-profile": ("latency_profile", []),
    "--default-latency-profile": ("default_latency_profile", None),
    "--policies": ("policies", "default,automaton,q-learning"),
    "--drift": ("drift", None),
}


def _replay_prompt_contexts(args: argparse.Namespace) -> int:
    """``--contexts prompts``: global, labelled and discovered contexts on the same sessions."""
    from pickllm.replay.contexts import compare_contexts, load_prompt_rows

    unused = [
        o for o, (name, default) in _POLICY_REPLAY_ONLY.items() if getattr(args, name) != default
    ]
    if unused:
        raise PickLLMError(
            f"--contexts prompts replays the default learner on RouterBench's costs (latency "
            f"0): {', '.join(unused)} do not apply to it"
        )
    if not args.data or args.format == "long":
        raise PickLLMError(
            "--contexts prompts needs RouterBench-format --data (its prompt and eval_name "
            "columns): give the files or their folder with --data"
        )
    reward = _reward(args)
    contexts = PromptContexts(warmup=args.warmup, max_clusters=args.max_clusters)
    prepare_output_folder(args.out, "--out")
    started = time.perf_counter()
    models, rows, skipped = load_prompt_rows(args.data, args.models)
    if len(models) < 2:
        raise PickLLMError(f"only one model ({models[0]}): give the replay two or more (--models)")
    if args.only_contexts:
        labels = {r.label for r in rows}
        unknown = [c for c in args.only_contexts if c not in labels]
        if unknown:
            raise PickLLMError(
                f"--only-contexts: not in the data: {unknown}; it has {sorted(labels)}"
            )
        rows = [r for r in rows if r.label in args.only_contexts]
    source = ", ".join(str(p) for p in args.data)
    print(
        f"replaying {source}: {len(rows)} prompts ({skipped} incomplete rows skipped), "
        f"{len(models)} models, labels {sorted({r.label for r in rows})}",
        file=sys.stderr,
    )
    result = compare_contexts(
        models,
        rows,
        sessions=args.sessions or 20,
        queries=args.queries,
        seed=args.seed,
        reward=reward,
        contexts=contexts,
        progress=_ProgressBar(not args.no_progress and sys.stderr.isatty()),
    )
    summary = result.table()
    print(summary)
    (args.out / "summary.txt").write_text(summary + "\n")
    result.write_json(args.out / "results.json")
    written = [args.out / "summary.txt", args.out / "results.json"]
    if not args.no_figures:
        try:
            result.write_figure(args.out / "contexts.png")
            written.append(args.out / "contexts.png")
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
        if args.command == "serve":
            from pickllm.gateway.serve import serve  # the server extra, imported only here

            return serve(args.config, host=args.host, port=args.port, workers=args.workers)
        if args.command == "evaluate":
            return run_evaluate(args)
        return replay(args)
    except (PickLLMError, OSError) as error:
        print(f"pickllm {args.command}: error: {error}", file=sys.stderr)
        return 2
