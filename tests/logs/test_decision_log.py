"""Decision logs: what Router(decision_log=...) writes, how it rotates, drops and closes, and
how read_log reads it back (including broken files)."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from model_farm import answer, fail, model_farm
from pickllm import (
    ArgumentTypeError,
    ConfigError,
    LearningAutomaton,
    Model,
    NoEligibleModelError,
    OpenAICompatible,
    Router,
)
from pickllm.logs import SCHEMA_VERSION, DecisionLog, export_parquet, read_log
from pickllm.replay import DataError, load_long
from pickllm.scorers import MultipleChoice

POOL = ["big", "mid", "small"]


def lines(folder: Path) -> list[dict[str, object]]:
    out = []
    for file in sorted(folder.glob("decisions-*.jsonl")):
        out += [json.loads(line) for line in file.read_text().splitlines()]
    return out


def test_without_a_log_select_and_feedback_are_the_cores_own() -> None:
    router = Router(POOL, seed=1)
    assert router.decision_log is None
    assert router.select.__self__ is router._core  # type: ignore[attr-defined]
    assert router.feedback.__self__ is router._core  # type: ignore[attr-defined]


def test_records_hold_the_decision_its_probabilities_and_the_feedback(tmp_path: Path) -> None:
    with Router(POOL, seed=3, decision_log=tmp_path) as router:
        expected = []
        for i in range(20):
            before = router.probabilities("math")
            d = router.select("math")
            reward = router.feedback(d, accuracy=i % 2, cost=0.001 * i, latency=0.1)
            expected.append((d, before, reward, i))
    header, *rest = lines(tmp_path)
    assert header["type"] == "router"
    assert header["models"] == POOL
    assert header["policy"] == router.policy.model_dump()
    assert header["schema"] == SCHEMA_VERSION
    decisions = [r for r in rest if r["type"] == "decision"]
    feedbacks = [r for r in rest if r["type"] == "feedback"]
    assert len(decisions) == len(feedbacks) == 20
    for (d, before, reward, i), logged, outcome in zip(expected, decisions, feedbacks, strict=True):
        assert (logged["id"], logged["model"], logged["context"]) == (d.id, d.model, "math")
        assert logged["probability"] == d.probability
        # Read just after the draw: the same distribution the draw used (no feedback between).
        assert logged["probabilities"] == [before[m] for m in POOL]
        assert logged["allowed"] == POOL
        assert "prompt" not in logged
        assert (outcome["id"], outcome["accuracy"], outcome["reward"]) == (d.id, i % 2, reward)
        assert outcome["cost"] == 0.001 * i
    loaded = read_log(tmp_path)
    assert [r.id for r in loaded.records] == [d.id for d, *_ in expected]
    assert loaded.unanswered == 0
    assert loaded.routers.keys() == {header["router"]}


def test_allowed_and_exclude_are_logged_even_from_iterators(tmp_path: Path) -> None:
    with Router(POOL, seed=3, decision_log=tmp_path) as router:
        a = router.select("x", exclude=iter(["big"]))
        b = router.select("x", allowed=(m for m in ["small", "big"]))
        c = router.select("x", allowed=["big", "mid"], exclude=["mid"])
    assert a.model != "big"
    assert b.model in ("small", "big")
    assert c.model == "big"
    decisions = [r for r in lines(tmp_path) if r["type"] == "decision"]
    assert [r["allowed"] for r in decisions] == [["mid", "small"], ["big", "small"], ["big"]]
    assert decisions[2]["probability"] == 1.0
    assert read_log(tmp_path).unanswered == 3


def test_rejected_calls_log_nothing(tmp_path: Path) -> None:
    with Router(POOL, seed=3, decision_log=tmp_path) as router:
        d = router.select("x")
        with pytest.raises(ValueError, match="accuracy"):
            router.feedback(d, accuracy=2.0)
        with pytest.raises(NoEligibleModelError, match="no model left"):
            router.select("x", allowed=[])
        router.feedback(d, accuracy=1.0)
    kinds = [r["type"] for r in lines(tmp_path)]
    assert kinds == ["router", "decision", "feedback"]


def test_files_rotate_by_size_and_each_names_its_router(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, max_bytes=2000)
    with Router(POOL, seed=3, decision_log=log) as router:
        for _ in range(100):
            router.feedback(router.select("x"), accuracy=1.0)
    files = sorted(tmp_path.glob("decisions-*.jsonl"))
    assert len(files) > 5
    for file in files:
        first = json.loads(file.read_text().splitlines()[0])
        assert first["type"] == "router"
        assert file.stat().st_size < 2000 + 1000, "rotated once past max_bytes"
    assert len(read_log(tmp_path).records) == 100


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path, max_queue=2)
    select, _ = log.wrap(Router(POOL, seed=1)._core)
    for _ in range(5):  # before start(): no writer drains the queue
        select("x")
    assert log.dropped == 3
    router = Router(POOL, seed=1, decision_log=log)
    router.close()
    assert sum(r["type"] == "decision" for r in lines(tmp_path)) == 2
    router.select("x")  # after close: still routes, the record is counted as dropped
    assert log.dropped == 4


def test_close_writes_everything_and_is_idempotent(tmp_path: Path) -> None:
    router = Router(POOL, seed=2, decision_log=DecisionLog(tmp_path, interval=60))
    for _ in range(50):
        router.feedback(router.select("x"), accuracy=0.5)
    router.close()
    router.close()
    assert len(read_log(tmp_path).records) == 50


def test_two_routers_share_a_folder(tmp_path: Path) -> None:
    with (
        Router(POOL, seed=1, decision_log=tmp_path) as a,
        Router(POOL, seed=2, decision_log=tmp_path) as b,
    ):
        for router in (a, b, a):
            router.feedback(router.select("x"), accuracy=1.0)
    loaded = read_log(tmp_path)
    assert len(loaded.routers) == 2
    assert len(loaded.records) == 3, "ids repeat across routers; records stay apart"


def test_bad_decision_log_arguments(tmp_path: Path) -> None:
    with pytest.raises(ArgumentTypeError, match="decision_log"):
        Router(POOL, decision_log=3)  # type: ignore[arg-type]
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(ConfigError, match="folder"):
        Router(POOL, decision_log=file)
    with pytest.raises(ConfigError, match="max_queue"):
        DecisionLog(tmp_path, max_queue=0)
    with pytest.raises(ConfigError, match="cannot write a decision log"):
        Router(POOL, decision_log=file / "below-a-file")
    log = DecisionLog(tmp_path / "one")
    with Router(POOL, decision_log=log), pytest.raises(ConfigError, match="one router"):
        Router(POOL, decision_log=log)


def test_a_logging_router_snapshots_and_pickles_without_its_log(tmp_path: Path) -> None:
    with Router(POOL, seed=4, decision_log=tmp_path) as router:
        router.feedback(router.select("x"), accuracy=1.0)
        copy = pickle.loads(pickle.dumps(router))
    assert copy.decision_log is None
    assert copy.select("x").model == router.select("x").model


def test_routed_calls_are_logged_with_failures_and_prompts_when_asked(tmp_path: Path) -> None:
    behaviours = {"down": fail(500), "up": answer("B")}
    with model_farm(behaviours) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="k")
        models = [Model(name, backend=backend) for name in behaviours]
        router = Router(
            models,
            policy=LearningAutomaton(),
            prior={"down": 1000.0, "up": 1.0},
            scorer=MultipleChoice(),
            breaker=None,
            seed=0,
            decision_log=DecisionLog(tmp_path, prompts=True),
        )
        with router:
            result = router.route("Which? A or B", context="quiz", reference="B")
    assert [a.model for a in result.attempts] == ["down", "up"]
    records = read_log(tmp_path).records
    assert [(r.model, r.accuracy) for r in records] == [("down", 0.0), ("up", 1.0)]
    assert records[1].allowed == ("up",), "the fallback is selected with allowed=[it]"
    assert records[1].probability == 1.0
    assert records[0].prompt == "Which? A or B"


def test_prompts_are_not_logged_by_default(tmp_path: Path) -> None:
    with model_farm({"m": answer("B")}) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="k")
        with Router(
            [Model("m", backend=backend)], scorer=MultipleChoice(), decision_log=tmp_path
        ) as router:
            router.route("secret question", reference="B")
    assert "secret" not in "".join(f.read_text() for f in tmp_path.iterdir())


def test_concurrent_aroutes_each_log_one_decision_and_its_feedback(tmp_path: Path) -> None:
    with model_farm({"a": answer("B"), "b": answer("A")}) as farm:
        backend = OpenAICompatible(base_url=farm.url, api_key="k")
        models = [Model(n, backend=backend) for n in ("a", "b")]

        async def main() -> list[float]:
            async with Router(
                models,
                scorer=MultipleChoice(),
                seed=9,
                decision_log=DecisionLog(tmp_path, prompts=True),
            ) as router:
                results = await asyncio.gather(
                    *(router.aroute(f"q{i}", context="c", reference="B") for i in range(40))
                )
            return [r.accuracy or 0.0 for r in results]

        accuracies = asyncio.run(main())
    records = read_log(tmp_path).records
    assert len(records) == 40
    assert sorted(r.accuracy for r in records) == sorted(accuracies)
    assert {str(r.prompt) for r in records} == {f"q{i}" for i in range(40)}


# ==================== Reading broken logs ====================


def test_read_log_skips_a_cut_line_and_refuses_newer_schemas(tmp_path: Path) -> None:
    with Router(POOL, seed=3, decision_log=tmp_path) as router:
        router.feedback(router.select("x"), accuracy=1.0)
    (file,) = tmp_path.glob("decisions-*.jsonl")
    with file.open("a") as out:
        out.write('{"schema": 1, "type": "decision", "rout')
    loaded = read_log(tmp_path)
    assert len(loaded.records) == 1
    assert loaded.skipped == {"invalid_json": 1}
    assert "skipped 1 invalid_json" in loaded.summary()
    with file.open("a") as out:
        out.write('\n{"schema": 99, "type": "feedback"}\n')
    with pytest.raises(DataError, match="schema 99 is newer"):
        read_log(tmp_path)


def test_read_log_input_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no decision log at"):
        read_log(tmp_path / "missing")
    with pytest.raises(DataError, match="no decision log files"):
        read_log(tmp_path)
    bad = tmp_path / "decisions-x-00001.jsonl"
    bad.write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_log(tmp_path)


def test_parquet_export_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "log"
    with Router(POOL, seed=3, decision_log=folder) as router:
        for i in range(10):
            router.feedback(router.select(f"c{i % 2}"), accuracy=i / 10, cost=0.5)
    assert export_parquet(folder, tmp_path / "log.parquet") == 10
    table = pq.read_table(tmp_path / "log.parquet").to_pylist()
    records = read_log(folder).records
    assert [row["id"] for row in table] == [r.id for r in records]
    assert [row["accuracy"] for row in table] == [r.accuracy for r in records]
    assert table[0]["probabilities"] == list(records[0].probabilities)
    assert table[0]["prompt"] is None


def test_the_long_format_loader_reads_a_log_directly(tmp_path: Path) -> None:
    with Router(POOL, seed=3, decision_log=tmp_path) as router:
        for i in range(12):
            router.feedback(router.select(f"c{i % 3}"), accuracy=1.0, cost=0.25, latency=0.5)
    records = read_log(tmp_path).records
    outcomes, report = load_long(tmp_path)
    assert report.rows_used == 12
    assert outcomes.context_names == ("c0", "c1", "c2")
    assert outcomes.n_queries == 12, "one query per decision, one model's cell each"
    block = outcomes.context("c0")
    first = next(r for r in records if r.context == "c0")
    assert block.query_ids[0] == f"{first.router}:{first.id}"
    cell = block.cell(0, outcomes.model_index(first.model))
    assert cell is not None
    assert (cell.accuracy, cell.cost, cell.latency) == (1.0, 0.25, 0.5)
    (file,) = tmp_path.glob("decisions-*.jsonl")
    assert load_long(file).outcomes == outcomes
