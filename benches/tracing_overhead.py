"""What OpenTelemetry tracing costs `Router.route` (docs/performance.md), in one run: route()
with an in-process backend that answers at once (so only pickllm's loop is timed, the worst
case for any overhead), in three states, each in its own fresh process, the three alternated
``--rounds`` times (so the machine's drift hits each alike):

1. baseline: opentelemetry not imported (what a plain ``pip install pickllm`` runs);
2. opentelemetry imported, no tracer provider configured (the spans must cost nothing);
3. a tracer provider configured (the SDK's, with no exporter): the cost of recording the
   route, attempt and scorer spans.

Prints one JSON object: per state the median over rounds of each process's median µs per
route, and the ratios to the baseline.

    python benches/tracing_overhead.py [--rounds 5] [--batches 9] [--calls 1000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "python"))

from test_bench_route_replay import MESSAGES, Instant

from pickllm import LearningAutomaton, Model, Router
from pickllm.scorers import MultipleChoice


def router() -> Router:
    backend = Instant()
    return Router(
        [Model("a", backend=backend), Model("b", backend=backend)],  # type: ignore[arg-type]
        policy=LearningAutomaton(0.1),
        scorer=MultipleChoice(),
        seed=1,
    )


def per_call(route: Any, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        route(MESSAGES, context="finance", reference="B")
    return (time.perf_counter() - started) / calls * 1e6


def measure(state: str, batches: int, calls: int) -> float:
    """This process's median µs per route in ``state``."""
    if state != "plain":
        from opentelemetry import trace

        if state == "configured":
            from opentelemetry.sdk.trace import TracerProvider

            trace.set_tracer_provider(TracerProvider())
    with router() as r:
        per_call(r.route, calls)  # warm up
        return statistics.median(per_call(r.route, calls) for _ in range(batches))


STATES = ("plain", "imported", "configured")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--state", choices=STATES, help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args()
    if args.state is not None:
        print(measure(args.state, args.batches, args.calls))
        return
    runs: dict[str, list[float]] = {state: [] for state in STATES}
    for _ in range(args.rounds):
        for state in STATES:
            command = [
                sys.executable,
                __file__,
                "--state",
                state,
                "--batches",
                str(args.batches),
                "--calls",
                str(args.calls),
            ]
            out = subprocess.run(command, capture_output=True, check=True, text=True).stdout
            runs[state].append(float(out))
    medians = {state: statistics.median(values) for state, values in runs.items()}
    print(
        json.dumps(
            {
                "baseline_us": round(medians["plain"], 2),
                "otel_imported_no_provider_us": round(medians["imported"], 2),
                "provider_configured_us": round(medians["configured"], 2),
                "ratio_no_provider": round(medians["imported"] / medians["plain"], 3),
                "ratio_configured": round(medians["configured"] / medians["plain"], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
