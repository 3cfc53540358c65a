"""The decision log under a producer faster than its disk: memory stays within max_queue
records plus one batch of formatted lines, drops are counted and reported, and records reach
the file while the producer runs. Deterministic: the sink is blocked by an Event, not timed."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import pytest

from pickllm import Router
from pickllm.logs import DecisionLog, read_log
from pickllm.logs import writer as writer_module
from pickllm.logs.writer import BATCH, DROP_REPORT_INTERVAL

POOL = ["big", "mid", "small"]


class BlockedSink:
    """Replaces a log's ``_write``: records each batch's size, and holds the first call
    until ``release()`` (the writer thread stalls as on a hung disk)."""

    def __init__(self, log: DecisionLog) -> None:
        self.batches: list[int] = []
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._real = log._write
        log._write = self  # type: ignore[method-assign]

    def __call__(self, lines: list[str]) -> None:
        self.batches.append(len(lines))
        self.entered.set()
        self._gate.wait()
        self._real(lines)

    def release(self) -> None:
        self._gate.set()


def records(folder: Path) -> int:
    """Decision and feedback records in the log files (headers left out)."""
    return sum(
        json.loads(line)["type"] != "router"
        for file in folder.glob("decisions-*.jsonl")
        for line in file.read_text().splitlines()
    )


def decision_lines(folder: Path) -> int:
    return sum(
        json.loads(line)["type"] == "decision"
        for file in folder.glob("decisions-*.jsonl")
        for line in file.read_text().splitlines()
    )


def test_a_stalled_writer_holds_max_queue_records_and_counts_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = DecisionLog(tmp_path, max_queue=50, interval=0.001)
    router = Router(POOL, seed=1, decision_log=log)
    sink = BlockedSink(log)
    router.select("x")
    assert sink.entered.wait(60), "the writer took the first record"
    held = sum(sink.batches)  # in the stalled writer's hands (formatted lines): that one
    assert held == 1
    with caplog.at_level(logging.WARNING, logger="pickllm"):
        for _ in range(10_000):
            router.feedback(router.select("x"), accuracy=1.0)
        # The writer is stalled: the queue is full at its bound, everything else was dropped.
        assert len(log._queue) == 50
        assert log.dropped == 1 + 20_000 - held - 50
        sink.release()
        router.close()
    assert max(sink.batches) <= BATCH
    assert records(tmp_path) == held + 50 == 1 + 20_000 - log.dropped
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1, "one warning per DROP_REPORT_INTERVAL"
    assert f"dropped {log.dropped} records" in warnings[0]


def test_a_drain_writes_in_batches_never_formatting_the_whole_queue_at_once(
    tmp_path: Path,
) -> None:
    log = DecisionLog(tmp_path, max_queue=10_000, interval=0.001)
    router = Router(POOL, seed=2, decision_log=log)
    sink = BlockedSink(log)
    router.select("x")
    assert sink.entered.wait(60)
    for _ in range(3_000):
        router.feedback(router.select("x"), accuracy=0.0)
    sink.release()
    router.close()
    assert log.dropped == 0
    assert sum(sink.batches) == 1 + 6_000
    assert max(sink.batches) == BATCH, "the 6,000 queued records went out BATCH at a time"
    assert len(read_log(tmp_path).records) == 3_000


def test_records_reach_the_file_while_a_faster_producer_runs(tmp_path: Path) -> None:
    # The producer never pauses; the writer must still flush batches meanwhile (before, a drain
    # chased the producer and wrote nothing until it stopped). The cap is a liveness bound
    # thousands of times what one scheduling interval needs.
    log = DecisionLog(tmp_path, max_queue=1_000, interval=0.001)
    with Router(POOL, seed=3, decision_log=log) as router:
        select = router.select
        for i in range(20_000_000):
            select("x")
            if i % 1_000 == 0 and decision_lines(tmp_path) > 0:
                break
        else:
            pytest.fail("nothing was written while the producer ran")
        assert len(log._queue) <= 1_000


def test_drop_warnings_are_rate_limited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(writer_module.time, "monotonic", lambda: clock[0])
    log = DecisionLog(tmp_path, max_queue=1)
    with caplog.at_level(logging.WARNING, logger="pickllm"):
        log._report_drops()  # nothing dropped: silent
        log._drop()
        log._report_drops()  # the first drop: at once
        log._drop()
        clock[0] += DROP_REPORT_INTERVAL / 2
        log._report_drops()  # within the interval: silent
        clock[0] += DROP_REPORT_INTERVAL / 2
        log._report_drops()  # the interval has passed: the new drops
        log._report_drops()  # nothing new: silent
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "dropped 1 records (1 in all)" in messages[0]
    assert "dropped 1 records (2 in all)" in messages[1]


def test_the_gateway_counter_follows_the_logs_running_count() -> None:
    from pickllm.gateway.metrics import Metrics

    metrics = Metrics(max_contexts=10)
    for seen in (0, 5, 5, 7):
        metrics.decision_log_dropped("auto", seen)
    exposition = metrics.exposition().decode()
    assert 'pickllm_decision_log_dropped_records_total{router="auto"} 7.0' in exposition
