"""pytest-benchmark benches of pickllm's Python API, each group next to its baselines.

Every learning bench sends the observation accuracy 0, cost = max_cost, latency = max_latency,
whose reward is exactly 0 for every system: the learners do all their arithmetic but stay where
they are (the automaton uniform, the worst case for its draw; Q-values at 0, all tied), so each
round measures the same work and no context converges or locks during the run.

Results carry ``extra_info`` (op, system, models) for benches/report.py to build its table.
"""

from __future__ import annotations

import itertools
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest
from baselines import (
    MinimalEpsilonGreedy,
    NumpyAutomaton,
    PlainAutomaton,
    PlainQLearning,
    RiverEpsilonGreedy,
)

from pickllm import UCB, Exp3, LearningAutomaton, QLearning, Router, ThompsonSampling

MODELS = [2, 4, 16, 64]
#: Reward 0 under every system's default reward (see the module docstring).
ZERO_REWARD: dict[str, float] = {"accuracy": 0.0, "cost": 0.01, "latency": 10.0}
SEED = 7

SYSTEMS: dict[str, Callable[[list[str]], Any]] = {
    "pickllm automaton": lambda models: Router(
        models, policy=LearningAutomaton(learning_rate=0.1, threshold=0.99), seed=SEED
    ),
    "pickllm q-learning": lambda models: Router(
        models,
        policy=QLearning(learning_rate=0.1, epsilon=0.2, epsilon_decay=0.99, epsilon_min=0.01),
        seed=SEED,
    ),
    # The newer learners, each its own baseline's peer: the ratio to "pickllm automaton" in
    # the same run is what docs/learners.md reports.
    "pickllm ucb (default)": lambda models: Router(models, policy=UCB(), seed=SEED),
    "pickllm thompson": lambda models: Router(models, policy=ThompsonSampling(), seed=SEED),
    "pickllm exp3": lambda models: Router(models, policy=Exp3(), seed=SEED),
    "plain Python automaton": lambda models: PlainAutomaton(models, seed=SEED),
    "plain Python q-learning": lambda models: PlainQLearning(models, seed=SEED),
    "NumPy automaton": lambda models: NumpyAutomaton(models, seed=SEED),
    "River EpsilonGreedy": lambda models: RiverEpsilonGreedy(models, seed=SEED),
}


def pool(n: int) -> list[str]:
    return [f"model-{i}" for i in range(n)]


def label(benchmark: Any, op: str, system: str, models: int, **extra: Any) -> None:
    benchmark.group = f"{op} / {models} models"
    benchmark.extra_info.update(op=op, system=system, models=models, **extra)


def test_call_overhead(benchmark: Any) -> None:
    """An empty Python call: what the timing loop itself adds to every figure below."""

    def nothing() -> None:
        pass

    label(benchmark, "empty call", "harness", 0)
    benchmark(nothing)


@pytest.mark.parametrize("models", MODELS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_select_feedback(benchmark: Any, system: str, models: int) -> None:
    router = SYSTEMS[system](pool(models))
    select, feedback = router.select, router.feedback
    accuracy, cost, latency = ZERO_REWARD.values()

    def decision() -> float:
        d = select("finance")
        return feedback(d, accuracy=accuracy, cost=cost, latency=latency)

    label(benchmark, "select+feedback", system, models)
    assert benchmark(decision) == 0.0


@pytest.mark.parametrize("models", MODELS)
@pytest.mark.parametrize("system", SYSTEMS)
def test_select(benchmark: Any, system: str, models: int) -> None:
    # Decisions nobody answers: each system expires the oldest after max_pending (100,000).
    router = SYSTEMS[system](pool(models))
    select = router.select
    label(benchmark, "select", system, models)
    assert benchmark(select, "finance").model in router.models


CONTEXTS = 100_000


@pytest.mark.parametrize("system", ["pickllm automaton", "plain Python automaton"])
def test_select_feedback_many_contexts(benchmark: Any, system: str) -> None:
    """Select + feedback visiting 100,000 contexts in turn (all created beforehand)."""
    router = SYSTEMS[system](pool(4))
    names = [f"tenant-{i}" for i in range(CONTEXTS)]
    for name in names:
        router.feedback(router.select(name), **ZERO_REWARD)
    select, feedback = router.select, router.feedback
    accuracy, cost, latency = ZERO_REWARD.values()
    contexts = itertools.cycle(names)

    def decision() -> float:
        d = select(next(contexts))
        return feedback(d, accuracy=accuracy, cost=cost, latency=latency)

    label(benchmark, "select+feedback, 100k contexts", system, 4)
    assert benchmark(decision) == 0.0


SNAPSHOT_CONTEXTS = 1_000


def trained(system: str) -> Any:
    """A router with 1,000 contexts of 4 models, 10 decisions each (one left pending)."""
    router = SYSTEMS[system](pool(4))
    for i in range(SNAPSHOT_CONTEXTS):
        for j in range(10):
            d = router.select(f"tenant-{i}")
            if j < 9:
                router.feedback(d, accuracy=(i + j) % 3 / 2, cost=0.001, latency=0.5)
    return router


def test_snapshot(benchmark: Any) -> None:
    router = trained("pickllm automaton")
    blob = router.snapshot()
    info = {"contexts": SNAPSHOT_CONTEXTS, "bytes": len(blob)}
    label(benchmark, "snapshot", "pickllm automaton", 4, **info)
    assert benchmark(router.snapshot) == blob


def test_restore(benchmark: Any) -> None:
    router = trained("pickllm automaton")
    blob = router.snapshot()
    info = {"contexts": SNAPSHOT_CONTEXTS, "bytes": len(blob)}
    label(benchmark, "restore", "pickllm automaton", 4, **info)
    assert benchmark(Router.restore, blob).snapshot() == blob


def test_pickle_plain_state(benchmark: Any) -> None:
    """The baseline: pickling the plain-Python automaton's learners (no validation, no CRC)."""
    state = trained("plain Python automaton").state()
    blob = pickle.dumps(state)
    label(benchmark, "snapshot", "plain Python automaton (pickle)", 4, bytes=len(blob))
    benchmark(pickle.dumps, state)


def test_unpickle_plain_state(benchmark: Any) -> None:
    blob = pickle.dumps(trained("plain Python automaton").state())
    label(benchmark, "restore", "plain Python automaton (pickle)", 4, bytes=len(blob))
    benchmark(pickle.loads, blob)


THREAD_DECISIONS = 100_000


@pytest.mark.parametrize("threads", [1, 2])
def test_threads(benchmark: Any, threads: int) -> None:
    """Total time for 100,000 select + feedback pairs on one router, split over 1 or 2 threads
    (each thread in its own context)."""
    router = SYSTEMS["pickllm automaton"](pool(4))
    accuracy, cost, latency = ZERO_REWARD.values()

    def work(context: str) -> None:
        select, feedback = router.select, router.feedback
        for _ in range(THREAD_DECISIONS // threads):
            feedback(select(context), accuracy=accuracy, cost=cost, latency=latency)

    def run() -> None:
        pool_ = [threading.Thread(target=work, args=(f"tenant-{t}",)) for t in range(threads)]
        for thread in pool_:
            thread.start()
        for thread in pool_:
            thread.join()

    label(benchmark, "threads", f"pickllm automaton, {threads} thread(s)", 4)
    benchmark.extra_info["decisions"] = THREAD_DECISIONS
    benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    assert router.pending == 0


#: Real rewards: four observations in turn, rewards 0.93, 0.2, 0.6 and 0.35 under every system's
#: default reward, so the learners move (and an automaton may lock, as in real use).
OBSERVATIONS = [
    {"accuracy": 1.0, "cost": 0.001, "latency": 1.0},
    {"accuracy": 0.0, "cost": 0.004, "latency": 6.0},
    {"accuracy": 1.0, "cost": 0.008, "latency": 8.0},
    {"accuracy": 0.5, "cost": 0.006, "latency": 5.0},
]
SESSION = 1_000


class Floor:
    """The floor: the core's `_Floor`, whose select and feedback have RouterCore's signatures
    and do nothing. What no extension-backed router can go below from Python."""

    def __init__(self, models: list[str]) -> None:
        from pickllm import _core

        self.models = models
        floor = _core._Floor(_core.Decision(0, models[0], 1.0, "finance"))
        self.select, self.feedback = floor.select, floor.feedback


REAL_REWARD_SYSTEMS: dict[str, Callable[[list[str]], Any]] = {
    **{name: SYSTEMS[name] for name in ("pickllm automaton", "pickllm q-learning")},
    "pickllm ucb (default)": SYSTEMS["pickllm ucb (default)"],
    # The default without its floor and change detector: what those two cost.
    "pickllm ucb, no floor, no detector": lambda models: Router(
        models, policy=UCB(floor=0.0, detect_changes=None), seed=SEED
    ),
    "pickllm ucb, no detector": lambda models: Router(
        models, policy=UCB(detect_changes=None), seed=SEED
    ),
    **{name: SYSTEMS[name] for name in ("plain Python automaton", "plain Python q-learning")},
    "minimal Python epsilon-greedy": lambda models: MinimalEpsilonGreedy(models, seed=SEED),
    "PyO3 no-op floor": Floor,
}


@pytest.mark.parametrize("system", REAL_REWARD_SYSTEMS)
def test_select_feedback_real_rewards(benchmark: Any, system: str) -> None:
    """Sessions of 1,000 decisions, each in a fresh context (so every round starts from the
    uniform learner), feedback cycling through OBSERVATIONS; reported per decision."""
    router = REAL_REWARD_SYSTEMS[system](pool(4))
    select, feedback = router.select, router.feedback
    observations = [tuple(o.values()) for o in OBSERVATIONS] * (SESSION // len(OBSERVATIONS))
    sessions = itertools.count()

    def session() -> float:
        context = f"session-{next(sessions)}"
        total = 0.0
        for accuracy, cost, latency in observations:
            d = select(context)
            total += feedback(d, accuracy=accuracy, cost=cost, latency=latency)
        return total

    label(benchmark, "select+feedback, real rewards", system, 4, decisions=SESSION)
    total = benchmark.pedantic(session, rounds=60, warmup_rounds=2)
    assert total == 0.0 if system == "PyO3 no-op floor" else total > 0.0
