"""Long format (JSONL / CSV): round trips, pivoting, malformed rows."""

from __future__ import annotations

import json
import math
import tempfile
from array import array
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pickllm.replay import (
    Cell,
    ContextOutcomes,
    DataError,
    LatencyModel,
    Loaded,
    Outcomes,
    load_long,
    write_long,
)


def write_jsonl(path: Path, lines: list[Any]) -> Path:
    """Each item is a record (dumped as JSON) or a raw line (str)."""
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def rec(query: Any = "q1", model: Any = "A", **changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "query_id": query,
        "context": "ctx",
        "model": model,
        "accuracy": 1.0,
        "cost": 0.01,
        "latency": 1.25,
    }
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_round_trip_real_routerbench(
    routerbench: Loaded, latency_model: LatencyModel, tmp_path: Path, suffix: str
) -> None:
    outcomes = latency_model.apply(routerbench.outcomes, seed=1)
    path = tmp_path / f"routerbench{suffix}"
    assert write_long(outcomes, path) == outcomes.n_cells == 34804
    back, report = load_long(path, models=outcomes.models)
    assert back == outcomes
    assert report.rows_read == report.rows_used == 34804
    assert dict(report.cells_missing) == {"no_row": 154}
    # Data that carries its own latency keeps it: applying a latency model changes nothing.
    assert latency_model.apply(back, seed=99) == outcomes


labels = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(',"\n;'),
    min_size=1,
    max_size=8,
).filter(lambda s: s.strip() == s and s.strip() != "")
unit = st.floats(0.0, 1.0)
positive = st.floats(0.0, 1e6, allow_nan=False)
maybe = st.one_of(st.just(math.nan), positive)


@st.composite
def outcome_tables(draw: st.DrawFn) -> Outcomes:
    models = draw(st.lists(labels, min_size=1, max_size=4, unique=True))
    names = draw(st.lists(labels, min_size=1, max_size=3, unique=True))
    blocks: list[ContextOutcomes] = []
    for name in names:
        ids = draw(st.lists(labels, min_size=1, max_size=4, unique=True))
        values: dict[str, list[float]] = {f: [] for f in ("acc", "cost", "lat", "tok")}
        mask: list[int] = []
        for q, _ in enumerate(ids):
            present = draw(st.lists(st.booleans(), min_size=len(models), max_size=len(models)))
            present[draw(st.integers(0, len(models) - 1))] = True  # at least one cell
            if q == 0 and not blocks:
                # Every model observed somewhere: load_long rejects a requested model with no row
                # (most likely a typo), so a model without any cell cannot round-trip.
                present = [True] * len(models)
            for here in present:
                cell = (draw(unit), draw(positive), draw(maybe), draw(maybe)) if here else None
                for key, v in zip(values, cell or (math.nan,) * 4, strict=True):
                    values[key].append(v)
                mask.append(int(here))
        blocks.append(
            ContextOutcomes(
                name=name,
                query_ids=tuple(ids),
                n_models=len(models),
                accuracy=array("d", values["acc"]),
                cost=array("d", values["cost"]),
                latency=array("d", values["lat"]),
                output_tokens=array("d", values["tok"]),
                mask=array("B", mask),
            )
        )
    return Outcomes(models=tuple(models), contexts=tuple(blocks))


@given(outcome_tables(), st.sampled_from([".csv", ".jsonl"]))
def test_round_trip_any_outcomes(outcomes: Outcomes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"log{suffix}"
        assert write_long(outcomes, path) == outcomes.n_cells
        back, report = load_long(path, models=outcomes.models)
    assert back == outcomes
    assert report.rows_skipped_total == 0
    assert report.cells_missing_total == sum(
        b.n_queries * b.n_models - b.n_cells for b in outcomes.contexts
    )


# ---------------------------------------------------------------- pivoting


def test_pivot_orders_masks_and_filters(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "log.jsonl",
        [
            rec("q1", "B", accuracy=0.0, cost=0.001, latency=0.3),
            rec("q1", "A"),
            rec("q2", "A", context="other", output_tokens=12),
            rec("q3", "B", latency=None),
        ],
    )
    outcomes, report = load_long(path)
    assert outcomes.models == ("B", "A")  # first appearance
    assert outcomes.context_names == ("ctx", "other")
    ctx = outcomes.context("ctx")
    assert ctx.query_ids == ("q1", "q3")
    first = ctx.cell(0, 0)
    assert first is not None
    assert first[:3] == (0.0, 0.001, 0.3)
    assert math.isnan(first.output_tokens)
    assert list(ctx.mask) == [1, 1, 1, 0]
    assert math.isnan(ctx.latency[2])  # null latency = unknown
    assert dict(report.cells_missing) == {"no_row": 2}
    other = outcomes.context("other")
    assert other.cell(0, 1) == Cell(1.0, 0.01, 1.25, 12.0)

    chosen, report = load_long(path, models=["A"], contexts=["ctx"])
    assert chosen.models == ("A",)
    assert chosen.context("ctx").query_ids == ("q1",)
    assert report.rows_filtered == 3
    assert report.rows_used == 1
    complete, report = load_long(path, drop_incomplete=True)
    assert complete.context_names == ("ctx",)
    assert complete.context("ctx").query_ids == ("q1",)
    assert dict(report.queries_dropped) == {"incomplete": 2}
    with pytest.raises(DataError, match=r"model\(s\) \['C'\] have no valid row"):
        load_long(path, models=["A", "C"])
    with pytest.raises(DataError, match=r"context\(s\) \['nope'\] have no valid row"):
        load_long(path, contexts=["nope"])


def test_numbers_as_strings_and_int_ids(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "log.ndjson",
        [rec(17, "A", accuracy="0.5", cost=" 0.002 ", latency="3"), rec(17, 5)],
    )
    outcomes, report = load_long(path)
    assert report.rows_skipped_total == 0
    assert outcomes.models == ("A", "5")
    assert outcomes.context("ctx").query_ids == ("17",)
    cell = outcomes.context("ctx").cell(0, 0)
    assert cell is not None
    assert cell[:3] == (0.5, 0.002, 3.0)


def test_latency_model_fills_unknown_latency_from_tokens(
    tmp_path: Path, latency_model: LatencyModel
) -> None:
    path = write_jsonl(
        tmp_path / "log.jsonl",
        [
            rec("q1", "gpt-4-1106-preview", latency=None, output_tokens=200),
            rec("q1", "mistralai/mistral-7b-chat", latency=0.75),
        ],
    )
    outcomes = load_long(path).outcomes
    filled = latency_model.apply(outcomes, seed=0)
    block = filled.context("ctx")
    assert block.latency[1] == 0.75  # the data's own latency is kept
    expected = latency_model.cell_latency(
        "gpt-4-1106-preview", 200.0, seed=0, context="ctx", query_id="q1"
    )
    assert block.latency[0] == expected > 0.3


# ---------------------------------------------------------------- malformed input

BAD_RECORDS = [
    ("{not json", "invalid_json", None),
    ("[1, 2]", "not_an_object", None),
    (rec(accuracy=...), "accuracy_missing", "accuracy"),
    (rec(accuracy=""), "accuracy_missing", "accuracy"),
    (rec(accuracy=1.2), "accuracy_out_of_range", "accuracy"),
    (rec(accuracy="high"), "accuracy_not_a_number", "accuracy"),
    (rec(accuracy=True), "accuracy_not_a_number", "accuracy"),
    (rec(cost=-1), "cost_negative", "cost"),
    (rec(cost=None), "cost_missing", "cost"),
    ('{"query_id": "q", "context": "ctx", "model": "A", "accuracy": 1, "cost": Infinity}',
     "cost_not_finite", "cost"),
    (rec(latency="slow"), "latency_not_a_number", "latency"),
    (rec(latency=-0.5), "latency_negative", "latency"),
    (rec(output_tokens=-3), "output_tokens_negative", "output_tokens"),
    (rec(model=True), "model_not_text", "model"),
    (rec(query=" "), "query_id_missing", "query_id"),
    (rec(context=...), "context_missing", "context"),
    (rec(context=["a"]), "context_not_text", "context"),
]  # fmt: skip


@pytest.mark.parametrize(("bad", "reason", "column"), BAD_RECORDS)
def test_malformed_jsonl_row(tmp_path: Path, bad: Any, reason: str, column: str | None) -> None:
    path = write_jsonl(tmp_path / "log.jsonl", [rec("q0"), "", bad, rec("q9")])
    outcomes, report = load_long(path)
    assert dict(report.rows_skipped) == {reason: 1}
    assert outcomes.context("ctx").query_ids == ("q0", "q9")
    assert report.rows_read == 3
    assert report.rows_used == 2
    with pytest.raises(DataError) as info:
        load_long(path, errors="raise")
    assert (info.value.path, info.value.line, info.value.column) == (str(path), 3, column)


def test_duplicate_cell_keeps_the_first(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "log.jsonl", [rec(cost=0.5), rec(cost=0.7)])
    outcomes, report = load_long(path)
    assert dict(report.rows_skipped) == {"duplicate_cell": 1}
    assert outcomes.context("ctx").cost[0] == 0.5
    with pytest.raises(DataError, match=r"log\.jsonl:2: second row for context 'ctx'"):
        load_long(path, errors="raise")


def test_unknown_fields_listed(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "log.jsonl", [rec(prompt="hi", user="u1"), rec("q2", prompt="")])
    outcomes, report = load_long(path)
    assert outcomes.n_queries == 2
    assert report.columns_ignored == (f"{path}: 'prompt'", f"{path}: 'user'")


def test_csv_long_format(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(
        "context,query_id,model,accuracy,cost,comment\n"
        "ctx,q1,A,1,0.01,fine\n"
        "ctx,q1,B,0,0.002\n"  # one field short
        'ctx,q2,B,0.5,0.003,"multi\nline"\n'
        "ctx,q3,B,x,0.003,\n"
    )
    outcomes, report = load_long(path)
    assert dict(report.rows_skipped) == {"wrong_field_count": 1, "accuracy_not_a_number": 1}
    assert report.columns_ignored == (f"{path}: 'comment'",)
    assert outcomes.models == ("A", "B")
    assert outcomes.context("ctx").query_ids == ("q1", "q2")
    assert math.isnan(outcomes.context("ctx").latency[0])  # no latency column: unknown
    with pytest.raises(DataError, match=r"log\.csv:3: 5 fields, the header has 6"):
        load_long(path, errors="raise")
    assert report.examples[1].startswith(f"{path}:6: column 'accuracy':")


def test_structural_errors(tmp_path: Path) -> None:
    no_cost = tmp_path / "no_cost.csv"
    no_cost.write_text("query_id,context,model,accuracy\nq,c,m,1\n")
    with pytest.raises(DataError, match=r"no_cost\.csv:1: no \['cost'\] column"):
        load_long(no_cost)
    log = write_jsonl(tmp_path / "log.txt", [rec()])
    with pytest.raises(DataError, match="cannot tell the format"):
        load_long(log)
    assert load_long(log, format="jsonl").outcomes.n_queries == 1
    with pytest.raises(ValueError, match="format must be"):
        load_long(log, format="xml")  # type: ignore[arg-type]
    all_bad = write_jsonl(tmp_path / "bad.jsonl", ["{", "{"])
    with pytest.raises(DataError, match=r"no usable query .* first problem: .*bad\.jsonl:1"):
        load_long(all_bad)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(rec()).encode() + b"\n" + '{"a": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.jsonl:2: not UTF-8"):
        load_long(latin)
    with pytest.raises(TypeError):
        load_long(log, format="jsonl", models="A")
