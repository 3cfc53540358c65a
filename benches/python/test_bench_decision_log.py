"""What a decision log costs the hot path: select+feedback with and without
``decision_log=``, in one run (the ratio is the figure; see docs/evaluation.md).

    python -m pytest benches/python/test_bench_decision_log.py --benchmark-only \\
        --benchmark-columns=median,iqr

With a log, each call also reads the learner's distribution (one more core call) and appends
a tuple to the writer's queue; formatting and writing happen on the writer thread. Records
beyond the queue's bound are dropped and counted, so a bench faster than the disk measures the
hot path, not the disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pickllm import LearningAutomaton, Router

ZERO_REWARD = {"accuracy": 0.0, "cost": 0.01, "latency": 10.0}


@pytest.mark.parametrize("logged", [False, True], ids=["no log", "decision log"])
def test_select_feedback_with_and_without_a_log(
    benchmark: Any, tmp_path: Path, logged: bool
) -> None:
    models = [f"model-{i}" for i in range(4)]
    with Router(
        models,
        policy=LearningAutomaton(0.1),
        seed=7,
        decision_log=tmp_path if logged else None,
    ) as router:
        select, feedback = router.select, router.feedback

        def decision() -> float:
            d = select("finance")
            return feedback(d, **ZERO_REWARD)

        system = "pickllm automaton" + (" + decision log" if logged else "")
        benchmark.group = "select+feedback / 4 models, decision log"
        benchmark.extra_info.update(op="select+feedback", system=system, models=4)
        assert benchmark(decision) == 0.0
