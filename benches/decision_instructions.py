"""Instructions per decision (select + feedback from Python), counted by valgrind's callgrind.

Timings on a shared machine move with the load; instruction counts do not. Each system runs the
loop of `test_select_feedback_real_rewards` (benches/python/test_bench_api.py: 4 models,
sessions of 1,000 decisions in fresh contexts, rewards cycling through four observations)
twice, with 5 and 55 sessions: the difference over 50,000 decisions is the per-decision count,
start-up and imports cancelled out. Instructions are not time (a division or a logarithm costs
more than an addition), so this complements the timed benches rather than replacing them.
Address-space randomization is turned off (``setarch -R``) and ``PYTHONHASHSEED`` fixed: with
either left random, dictionary layouts (and so instructions) move by up to ±130 per decision
between runs of the same build; without both, the counts repeat exactly.

    python benches/decision_instructions.py            # needs valgrind (Debian package)
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile

SYSTEMS = {
    "PyO3 no-op floor": "floor",
    "pickllm automaton": "automaton",
    "UCB(floor=0, detect_changes=None)": "plain",
    "UCB(), the default": "default",
}

LOOP = """
import sys
from pickllm import UCB, LearningAutomaton, Router, _core
models = [f"model-{i}" for i in range(4)]
kind, sessions = sys.argv[1], int(sys.argv[2])
router = {
    "floor": lambda: _core._Floor(_core.Decision(0, models[0], 1.0, "finance")),
    "automaton": lambda: Router(
        models, policy=LearningAutomaton(learning_rate=0.1, threshold=0.99), seed=7
    ),
    "plain": lambda: Router(models, policy=UCB(floor=0.0, detect_changes=None), seed=7),
    "default": lambda: Router(models, policy=UCB(), seed=7),
}[kind]()
observations = [(1.0, 0.001, 1.0), (0.0, 0.004, 6.0), (1.0, 0.008, 8.0), (0.5, 0.006, 5.0)] * 250
def run(select, feedback):
    for s in range(sessions):
        context = f"session-{s}"
        for accuracy, cost, latency in observations:
            feedback(select(context), accuracy=accuracy, cost=cost, latency=latency)
run(router.select, router.feedback)
"""


def instructions(kind: str, sessions: int) -> int:
    with (
        tempfile.NamedTemporaryFile("w", suffix=".py") as script,
        tempfile.TemporaryDirectory() as out,
    ):
        script.write(LOOP)
        script.flush()
        result = subprocess.run(
            ["setarch", platform.machine(), "-R",
             "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
             sys.executable, script.name, kind, str(sessions)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{result.stderr}")
    return int(match.group(1))


def main() -> None:
    floor = None
    print("| system | instructions per decision | ratio to the floor |\n|---|---|---|")
    for name, kind in SYSTEMS.items():
        per_decision = (instructions(kind, 55) - instructions(kind, 5)) / 50_000
        floor = floor or per_decision
        print(f"| {name} | {per_decision:,.0f} | {per_decision / floor:.2f}x |")


if __name__ == "__main__":
    main()
