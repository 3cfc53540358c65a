"""LogStream: the same records as read_log, in the same order, read in passes from disk with
memory that does not grow with the log; and `pickllm evaluate`'s progress bar on a terminal."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from pickllm import QLearning, Router
from pickllm.evaluate import evaluate
from pickllm.logs import DecisionLog, LogStream, read_log

POOL = ["big", "mid", "small"]
UNIFORM = QLearning(epsilon=1.0, epsilon_decay=1.0, epsilon_min=1.0, lock=False)


def write_log(folder: Path, decisions: int, *, seed: int = 1, in_flight: int = 1) -> None:
    """``decisions`` decisions over 7 contexts, answered ``in_flight`` decisions later (the
    order a busy gateway answers in), every 50th never."""
    with Router(POOL, policy=UNIFORM, seed=seed, decision_log=folder, max_pending=100) as r:
        waiting = []
        for i in range(decisions):
            waiting.append((i, r.select(f"c{i % 7}")))
            if len(waiting) >= in_flight:
                j, d = waiting.pop(0)
                if j % 50 != 49:
                    r.feedback(d, accuracy=float(j % 3 == 0), cost=0.001 * (j % 5), latency=0.5)
            if i % 5_000 == 0:
                r.decision_log.flush()  # type: ignore[union-attr]


def test_a_stream_yields_what_read_log_loads_in_the_same_order(tmp_path: Path) -> None:
    write_log(tmp_path, 3_000, in_flight=9)
    with Router(POOL, seed=2, decision_log=DecisionLog(tmp_path, max_bytes=20_000)) as other:
        for _ in range(500):  # a second router in the same folder, rotating files
            other.feedback(other.select("c1"), accuracy=1.0)
    # A line cut short by a crash, and feedback of a decision the writer dropped.
    file = sorted(tmp_path.glob("decisions-*.jsonl"))[0]
    with file.open("a") as out:
        out.write('{"schema": 1, "type": "deci\n')
        router = json.loads(file.read_text().splitlines()[0])["router"]
        out.write(
            json.dumps(
                {
                    "schema": 1,
                    "type": "feedback",
                    "router": router,
                    "id": 10**9,
                    "time": 0,
                    "accuracy": 1,
                    "cost": 0,
                    "latency": 0,
                    "reward": 1,
                }
            )
        )
        out.write("\n")
    loaded = read_log(tmp_path)
    stream = LogStream(tmp_path)
    assert list(stream) == loaded.records
    assert list(stream) == loaded.records, "a stream reads again from disk, identically"
    assert stream.unanswered == loaded.unanswered >= 60, "every 50th, and the last in flight"
    assert stream.records == len(loaded.records) == 3_500 - loaded.unanswered
    assert stream.skipped == loaded.skipped
    assert stream.summary() == loaded.summary()
    assert stream.models == loaded.models
    assert stream.routers == loaded.routers


def test_concurrent_aroutes_stream_in_time_order(tmp_path: Path) -> None:
    async def main() -> None:
        with Router(POOL, seed=3, decision_log=tmp_path) as router:

            async def one(i: int) -> None:
                d = router.select(f"c{i % 3}")
                await asyncio.sleep(0.001 * (i % 4))
                router.feedback(d, accuracy=1.0)

            await asyncio.gather(*(one(i) for i in range(200)))

    asyncio.run(main())
    assert list(LogStream(tmp_path)) == read_log(tmp_path).records


def test_a_stream_holds_the_decisions_in_flight_not_the_log(tmp_path: Path) -> None:
    # Memory: the decisions waiting for feedback at one point of the file (plus one bit per
    # decision), whatever the log's length; read_log holds them all.
    for decisions in (2_000, 20_000):
        folder = tmp_path / str(decisions)
        write_log(folder, decisions, in_flight=20)
        stream = LogStream(folder)
        assert sum(1 for _ in stream) == len(read_log(folder).records)
        assert stream.in_flight == 20, "the writer's 20 pending decisions, never more"


def test_evaluate_gives_the_same_estimates_streamed_or_loaded(tmp_path: Path) -> None:
    write_log(tmp_path, 4_000, in_flight=3)
    streamed = evaluate(tmp_path, [*POOL, "q_learning"], horizon=50).to_json()
    loaded = evaluate(read_log(tmp_path), [*POOL, "q_learning"], horizon=50).to_json()
    assert streamed["log"] == loaded["log"]
    assert json.dumps(streamed, sort_keys=True) == json.dumps(loaded, sort_keys=True)


def _evaluate_cli(folder: Path, *, tty: bool) -> str:
    """`pickllm evaluate`'s standard error, on a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "pickllm", "evaluate", "--log", str(folder), "--policy", "big"]
    if not tty:
        done = subprocess.run(command, capture_output=True, check=True, timeout=300)
        return done.stderr.decode()
    main, child = pty.openpty()
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=child) as process:
        os.close(child)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=300) == 0
    os.close(main)
    return b"".join(chunks).decode()


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_the_progress_bar_is_drawn_on_a_terminal_only(tmp_path: Path, tty: bool) -> None:
    write_log(tmp_path, 300)
    err = _evaluate_cli(tmp_path, tty=tty)
    assert "294 decisions with feedback" in err
    if tty:
        assert "\revaluate: [" in err
        assert "100% pass 3/3" in err
        assert "evaluate: done in" in err
    else:
        assert "\r" not in err
        assert "evaluate:" not in err
