"""Builds of the Python extension side by side: a decision's cost from Python, in one process.

On a shared machine two runs of the timed bench differ by more than a change of a few percent,
so this loads several builds of ``pickllm._core`` into one interpreter (each copy of the shared
library keeps its own state) and times them in alternating sessions: the loop of
``test_select_feedback_real_rewards`` (benches/python/test_bench_api.py: 4 models, sessions of
1,000 select+feedback in fresh contexts, rewards cycling through four observations), per system
the median over ``--sessions`` sessions of the time per decision, and its ratio to the first
build's no-op floor (``_core._Floor``). The routers are built from the configs of
``pickllm.Router`` (the installed Python package) and called directly, as ``Router`` binds them.

    cp python/pickllm/_core.abi3.so /tmp/candidate.so       # after building the change
    git stash && pip install -e . --no-deps --no-build-isolation && git stash pop
    python benches/ab_extension.py main=python/pickllm/_core.abi3.so new=/tmp/candidate.so
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import statistics
import time
from types import ModuleType
from typing import Any

from pickllm import UCB, LearningAutomaton, Router

MODELS = [f"model-{i}" for i in range(4)]
OBSERVATIONS = [(0.93, 0.0, 0.0), (0.2, 0.0, 0.0), (0.6, 0.0, 0.0), (0.35, 0.0, 0.0)] * 250
POLICIES = {
    "automaton": LearningAutomaton(),
    "UCB(floor=0, detect_changes=None)": UCB(floor=0.0, detect_changes=None),
    "UCB(detect_changes=None)": UCB(detect_changes=None),
    "UCB(), the default": UCB(),
}


def load(path: str) -> ModuleType:
    """A separate copy of the extension from the shared library at `path`."""
    spec = importlib.util.spec_from_file_location("pickllm._core", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"not a Python extension: {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("builds", nargs="+", help="NAME=path/to/_core.abi3.so")
    parser.add_argument("--sessions", type=int, default=150)
    args = parser.parse_args()
    systems: dict[tuple[str, str], Any] = {}
    for build in args.builds:
        name, path = build.split("=", 1)
        core = load(path)
        systems[name, "floor"] = core._Floor(core.Decision(0, MODELS[0], 1.0, "finance"))
        for label, policy in POLICIES.items():
            config = Router(MODELS, policy=policy, seed=7)._core.config_json()
            systems[name, label] = core.RouterCore(config, 7)
    contexts = (f"session-{i}" for i in itertools.count())

    def session(router: Any) -> float:
        select, feedback, context = router.select, router.feedback, next(contexts)
        start = time.perf_counter_ns()
        for accuracy, cost, latency in OBSERVATIONS:
            feedback(select(context), accuracy=accuracy, cost=cost, latency=latency)
        return (time.perf_counter_ns() - start) / len(OBSERVATIONS)

    times: dict[tuple[str, str], list[float]] = {key: [] for key in systems}
    for round_ in range(args.sessions + 3):
        for key, router in systems.items():
            elapsed = session(router)
            if round_ >= 3:  # warm-up
                times[key].append(elapsed)
    floor = statistics.median(next(iter(times.values())))
    print("| build | system | median per decision | ratio to the floor |\n|---|---|---|---|")
    for (name, label), elapsed in times.items():
        median = statistics.median(elapsed)
        print(f"| {name} | {label} | {median:.0f} ns | {median / floor:.2f}x |")


if __name__ == "__main__":
    main()
