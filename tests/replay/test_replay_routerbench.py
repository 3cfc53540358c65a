"""RouterBench wide-format loader: the real shared CSVs, the pickle path, and malformed input."""

from __future__ import annotations

import math
import pickle
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pickllm.errors import PickLLMError
from pickllm.replay import (
    DataError,
    LatencyModel,
    Loaded,
    OptionalDependencyError,
    estimate_output_tokens,
    load_routerbench,
)

#: The ``write_csv`` fixture (tests/replay/conftest.py): rows, file name -> path.
WriteCsv = Callable[..., Path]

# ---------------------------------------------------------------- the real data (shared/data)

CONTEXT_SIZES = {"arc-challenge": 1039 + 445, "mbpp": 299 + 128, "winogrande": 887 + 380}


def test_real_counts(routerbench: Loaded, routerbench_models: frozenset[str]) -> None:
    outcomes, report = routerbench
    assert set(outcomes.models) == routerbench_models
    assert len(outcomes.models) == 11
    assert report.rows_read == report.rows_used == report.queries == outcomes.n_queries == 3178
    assert len(report.sources) == 6
    assert {c.name: c.n_queries for c in outcomes.contexts} == CONTEXT_SIZES
    assert report.rows_skipped_total == report.rows_filtered == report.queries_dropped_total == 0
    assert report.columns_ignored == ()


def test_real_blank_cells_are_masked_and_counted(routerbench: Loaded) -> None:
    outcomes, report = routerbench
    # 28 arc-challenge rows have blank correctness: 14 keep only gpt-3.5, 14 lack only gpt-3.5.
    assert dict(report.cells_missing) == {"blank_quality": 154}
    zeros = sum(c.n_queries * c.n_models - c.n_cells for c in outcomes.contexts)
    assert zeros == report.cells_missing_total == 154
    assert report.cells == outcomes.n_cells == 3178 * 11 - 154
    m = len(outcomes.models)
    incomplete = {
        c.name: sum(1 for q in range(c.n_queries) if not all(c.mask[q * m : (q + 1) * m]))
        for c in outcomes.contexts
    }
    assert incomplete == {"arc-challenge": 28, "mbpp": 0, "winogrande": 0}
    arc = outcomes.context("arc-challenge")
    for i, present in enumerate(arc.mask):
        if not present:
            assert math.isnan(arc.accuracy[i])
            assert math.isnan(arc.cost[i])


def test_real_duplicate_sample_ids_kept_apart(routerbench: Loaded) -> None:
    outcomes, report = routerbench
    # 14 arc-challenge sample_ids appear twice, with different prompts and costs.
    assert report.notes["duplicate_id_renamed"] == 14
    arc = outcomes.context("arc-challenge")
    assert len(set(arc.query_ids)) == arc.n_queries
    assert sum(q.endswith("#2") for q in arc.query_ids) == 14
    assert "arc-challenge.val.172#2" in arc.query_ids


def test_real_drop_incomplete(routerbench_dir: Path) -> None:
    outcomes, report = load_routerbench(routerbench_dir, drop_incomplete=True)
    assert outcomes.n_queries == 3178 - 28
    assert dict(report.queries_dropped) == {"incomplete": 28}
    assert report.cells_missing_total == 0
    assert all(all(c.mask) for c in outcomes.contexts)
    # Each duplicated id had one incomplete copy, so nothing needs renaming any more.
    assert "duplicate_id_renamed" not in report.notes


def test_real_values_and_what_routing_exploits(routerbench: Loaded) -> None:
    outcomes, _ = routerbench
    stats = outcomes.stats()
    for context in stats.values():
        for model in context.values():
            assert 0.0 <= model.accuracy <= 1.0
            assert model.cost > 0.0
            assert math.isnan(model.latency)  # RouterBench has no latency
    # Per-context ranking differs: Yi-34B is strong on arc-challenge, weak on mbpp (README).
    arc = sorted(stats["arc-challenge"], key=lambda m: -stats["arc-challenge"][m].accuracy)
    mbpp = sorted(stats["mbpp"], key=lambda m: -stats["mbpp"][m].accuracy)
    assert arc.index("zero-one-ai/Yi-34B-Chat") <= 2
    assert mbpp.index("zero-one-ai/Yi-34B-Chat") >= 7
    # Costs span about 60x between the dearest and the cheapest model (README).
    mean_cost = {
        m: sum(stats[c][m].cost * stats[c][m].n for c in stats) / sum(stats[c][m].n for c in stats)
        for m in outcomes.models
    }
    assert 50 < max(mean_cost.values()) / min(mean_cost.values()) < 75
    assert max(mean_cost, key=lambda m: mean_cost[m]) == "gpt-4-1106-preview"


def test_real_output_tokens_from_response_length(routerbench: Loaded) -> None:
    outcomes, _ = routerbench
    stats = outcomes.stats()
    # arc-challenge answers are a letter (1 token), mbpp answers are code (hundreds of chars).
    assert stats["arc-challenge"]["gpt-4-1106-preview"].output_tokens < 1.5
    assert stats["mbpp"]["gpt-4-1106-preview"].output_tokens > 50
    for block in outcomes.contexts:
        for i, present in enumerate(block.mask):
            if present:
                tokens = block.output_tokens[i]
                assert tokens >= 1
                assert tokens == int(tokens)


def test_real_model_and_context_selection(routerbench_dir: Path) -> None:
    pool = ["mistralai/mistral-7b-chat", "gpt-4-1106-preview"]
    outcomes, report = load_routerbench(routerbench_dir, models=pool, contexts=["mbpp"])
    assert outcomes.models == tuple(pool)
    assert outcomes.context_names == ("mbpp",)
    assert outcomes.n_queries == 427
    assert report.rows_filtered == 3178 - 427
    assert report.rows_read == report.rows_filtered + report.rows_used
    full = load_routerbench(routerbench_dir / "mbpp_test.csv").outcomes
    assert outcomes.context("mbpp").query_ids[:128] == full.context("mbpp").query_ids


def test_real_unknown_selection_is_a_clear_error(routerbench_dir: Path) -> None:
    with pytest.raises(DataError, match=r"model\(s\) \['gpt-5'\] not in"):
        load_routerbench(routerbench_dir, models=["gpt-5"])
    with pytest.raises(DataError, match=r"context\(s\) \['gsm8k'\] not found"):
        load_routerbench(routerbench_dir, contexts=["mbpp", "gsm8k"])
    with pytest.raises(TypeError, match="sequence of names"):
        load_routerbench(routerbench_dir, models="gpt-4-1106-preview")


def test_real_pickle_matches_csv(
    routerbench_dir: Path, routerbench: Loaded, tmp_path: Path
) -> None:
    pandas = pytest.importorskip("pandas", reason="the RouterBench pickle path needs pandas")
    frames = [pandas.read_csv(p, index_col=0) for p in sorted(routerbench_dir.glob("*.csv"))]
    frame = pandas.concat(frames)
    # The published pickle may hold responses as lists rather than stringified lists.
    column = "gpt-4-1106-preview|model_response"
    frame[column] = [eval_list(text) for text in frame[column]]
    path = tmp_path / "routerbench_0shot.pkl"
    frame.to_pickle(path)
    outcomes, report = load_routerbench(path)
    assert outcomes == routerbench.outcomes
    assert report.rows_read == 3178
    assert dict(report.cells_missing) == dict(routerbench.report.cells_missing)


def eval_list(text: str) -> list[str]:
    import ast

    value = ast.literal_eval(text)
    assert isinstance(value, list)
    return value


def test_pickle_without_pandas_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"not": "read"}))
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    with pytest.raises(OptionalDependencyError, match="needs pandas") as info:
        load_routerbench(path)
    assert isinstance(info.value, ImportError)
    assert isinstance(info.value, PickLLMError)


def test_pickle_of_something_else(tmp_path: Path) -> None:
    pytest.importorskip("pandas", reason="reading a pickle needs pandas")
    not_a_frame = tmp_path / "list.pkl"
    not_a_frame.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(DataError, match="holds a list, not a pandas DataFrame"):
        load_routerbench(not_a_frame)
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match="cannot read as a pickled DataFrame"):
        load_routerbench(garbage)


# ---------------------------------------------------------------- small files in tmp_path

HEADER = [
    "",
    "sample_id",
    "prompt",
    "eval_name",
    "A",
    "B",
    "A|model_response",
    "B|model_response",
    "A|total_cost",
    "B|total_cost",
    "oracle_model_to_route_to",
]


def row(n: int, **changes: str) -> list[str]:
    """A valid row; keyword names are column names with '|' written '__' (A__total_cost)."""
    values = {
        "": str(n),
        "sample_id": f"t.{n}",
        "prompt": f"['question {n}']",
        "eval_name": "ctx",
        "A": "1.0",
        "B": "0.0",
        "A|model_response": "['" + "a" * 10 + "']",
        "B|model_response": "['b']",
        "A|total_cost": "0.01",
        "B|total_cost": "0.0005",
        "oracle_model_to_route_to": "A",
    }
    for key, value in changes.items():
        values[key.replace("__", "|")] = value
    return [values[c] for c in HEADER]


def good_rows() -> list[list[str]]:
    # Row 1 has a prompt over three physical lines: row 3 starts on line 6, not line 4.
    return [HEADER, row(1, prompt="['first\nsecond\nthird']"), row(2), row(3), row(4)]


def test_small_file_values(write_csv: WriteCsv) -> None:
    outcomes, report = load_routerbench(write_csv(good_rows(), "small.csv"))
    assert outcomes.models == ("A", "B")
    block = outcomes.context("ctx")
    assert block.query_ids == ("t.1", "t.2", "t.3", "t.4")
    cell = block.cell(0, 0)
    assert cell is not None
    assert (cell.accuracy, cell.cost) == (1.0, 0.01)
    assert cell.output_tokens == estimate_output_tokens("a" * 10) == 3
    assert math.isnan(cell.latency)
    assert report.rows_read == report.rows_used == 4


MALFORMED = [
    ("A", "abc", "quality_not_a_number", "A"),
    ("A", "1.5", "quality_out_of_range", "A"),
    ("A", "-0.1", "quality_out_of_range", "A"),
    ("A", "inf", "quality_not_finite", "A"),
    ("B__total_cost", "-0.002", "cost_negative", "B|total_cost"),
    ("B__total_cost", "cheap", "cost_not_a_number", "B|total_cost"),
    ("eval_name", "", "eval_name_missing", "eval_name"),
    ("sample_id", "  ", "sample_id_missing", "sample_id"),
]


@pytest.mark.parametrize(("key", "value", "reason", "column"), MALFORMED)
def test_malformed_row_skipped_and_counted(
    write_csv: WriteCsv, key: str, value: str, reason: str, column: str
) -> None:
    rows = good_rows()
    rows[3] = row(3, **{key: value})
    path = write_csv(rows, "bad.csv")
    outcomes, report = load_routerbench(path)
    assert dict(report.rows_skipped) == {reason: 1}
    assert outcomes.context("ctx").query_ids == ("t.1", "t.2", "t.4")
    assert report.rows_read == 4
    assert report.rows_used == 3
    assert report.examples[0].startswith(f"{path}:6: column {column!r}:")


@pytest.mark.parametrize(("key", "value", "reason", "column"), MALFORMED)
def test_malformed_row_raises_with_location(
    write_csv: WriteCsv, key: str, value: str, reason: str, column: str
) -> None:
    rows = good_rows()
    rows[3] = row(3, **{key: value})
    path = write_csv(rows, "bad.csv")
    with pytest.raises(DataError) as info:
        load_routerbench(path, errors="raise")
    error = info.value
    assert (error.path, error.line, error.column) == (str(path), 6, column)
    assert str(error).startswith(f"{path}:6: column {column!r}: ")
    assert isinstance(error, ValueError)
    assert isinstance(error, PickLLMError)
    assert reason  # the reason is what "skip" mode counts (previous test)


def test_wrong_field_count(write_csv: WriteCsv) -> None:
    rows = good_rows()
    rows[2] = [*row(2), "extra"]
    rows[3] = row(3)[:-2]
    path = write_csv(rows)
    outcomes, report = load_routerbench(path)
    assert dict(report.rows_skipped) == {"wrong_field_count": 2}
    assert outcomes.n_queries == 2
    with pytest.raises(DataError, match=r":5: 12 fields, the header has 11"):
        load_routerbench(path, errors="raise")


def test_only_selected_models_are_checked(write_csv: WriteCsv) -> None:
    rows = good_rows()
    rows[3] = row(3, B="not a score")
    path = write_csv(rows)
    outcomes, report = load_routerbench(path, models=["A"])
    assert outcomes.n_queries == 4
    assert report.rows_skipped_total == 0
    assert load_routerbench(path).report.rows_skipped_total == 1


def test_blank_cells_masked(write_csv: WriteCsv) -> None:
    rows = good_rows()
    rows[2] = row(2, B="")
    rows[3] = row(3, A="nan")  # how pandas spells a missing value
    rows[4] = row(4, B__total_cost="")
    rows.append(row(5, A="", B=""))
    outcomes, report = load_routerbench(write_csv(rows))
    block = outcomes.context("ctx")
    assert block.query_ids == ("t.1", "t.2", "t.3", "t.4")  # t.5 has no outcome at all
    assert list(block.mask) == [1, 1, 1, 0, 0, 1, 1, 0]
    assert dict(report.cells_missing) == {"blank_quality": 2, "blank_cost": 1}
    assert dict(report.queries_dropped) == {"no_outcomes": 1}
    assert report.rows_used == 5
    dropped = load_routerbench(write_csv(rows), drop_incomplete=True)
    assert dropped.outcomes.context("ctx").query_ids == ("t.1",)
    assert dict(dropped.report.queries_dropped) == {"no_outcomes": 1, "incomplete": 3}


def test_unknown_columns_listed_not_read(write_csv: WriteCsv) -> None:
    extra = ["C", "D|total_cost", "A|latency"]
    rows = [[*good_rows()[0], *extra]] + [[*r, "x", "y", "z"] for r in good_rows()[1:]]
    path = write_csv(rows)
    outcomes, report = load_routerbench(path)
    assert outcomes.models == ("A", "B")
    assert report.columns_ignored == tuple(f"{path}: {c!r}" for c in extra)
    assert report.rows_skipped_total == 0
    assert outcomes.n_queries == 4


def test_model_absent_from_one_file(write_csv: WriteCsv) -> None:
    keep = [i for i, c in enumerate(HEADER) if not c.startswith("B")]
    first = write_csv(good_rows(), "1.csv")
    second = write_csv([[r[i] for i in keep] for r in good_rows()], "2.csv")
    outcomes, report = load_routerbench([first, second])
    assert outcomes.models == ("A", "B")
    assert report.cells_missing == {"column_absent": 4}
    assert report.notes["duplicate_id_renamed"] == 4  # same sample_ids in both files
    with pytest.raises(DataError, match=r"model\(s\) \['B'\] not in"):
        load_routerbench(second, models=["A", "B"])


def test_response_column_absent_noted(write_csv: WriteCsv) -> None:
    keep = [i for i, c in enumerate(HEADER) if c != "A|model_response"]
    outcomes, report = load_routerbench(write_csv([[r[i] for i in keep] for r in good_rows()]))
    assert report.notes["response_column_absent"] == 1
    assert math.isnan(outcomes.context("ctx").output_tokens[0])
    assert outcomes.context("ctx").output_tokens[1] == 1.0


def test_structural_errors(write_csv: WriteCsv, tmp_path: Path) -> None:
    no_context = [[c for c in r if c != "ctx"] for r in good_rows()]
    no_context[0] = [c for c in HEADER if c != "eval_name"]
    with pytest.raises(DataError, match=r"no\.csv:1: no 'eval_name' column"):
        load_routerbench(write_csv(no_context, "no.csv"))
    with pytest.raises(DataError, match=r"duplicate column names \['A'\]"):
        load_routerbench(write_csv([[*HEADER, "A"]], "dup.csv"))
    with pytest.raises(DataError, match="empty file"):
        load_routerbench(write_csv([], "empty.csv"))
    with pytest.raises(DataError, match="no model column"):
        load_routerbench(write_csv([["sample_id", "eval_name", "X"], ["1", "c", "1"]], "nm.csv"))
    with pytest.raises(FileNotFoundError):
        load_routerbench(tmp_path / "missing.csv")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DataError, match=r"no .* file in this folder"):
        load_routerbench(tmp_path / "empty_dir")


def test_broken_csv_is_an_error_with_line(tmp_path: Path, write_csv: WriteCsv) -> None:
    path = write_csv(good_rows())
    text = path.read_text()
    broken = tmp_path / "broken.csv"
    broken.write_text(text + "5,t.5,\"['unterminated,ctx\n")
    with pytest.raises(DataError, match=r"broken\.csv:8: not valid CSV here"):
        load_routerbench(broken)
    latin = tmp_path / "latin.csv"
    latin.write_bytes(text.encode() + "6,t.6,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text"):
        load_routerbench(latin)


def test_nothing_usable_is_an_error(write_csv: WriteCsv) -> None:
    rows = [HEADER, row(1, A="x"), row(2, A="y")]
    with pytest.raises(
        DataError, match=r"no usable query .* skipped \{'quality_not_a_number': 2\}"
    ):
        load_routerbench(write_csv(rows))


def test_bad_options(write_csv: WriteCsv) -> None:
    path = write_csv(good_rows())
    with pytest.raises(ValueError, match="errors must be"):
        load_routerbench(path, errors="ignore")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="duplicate model names"):
        load_routerbench(path, models=["A", "A"])
    with pytest.raises(DataError, match="selection is empty"):
        load_routerbench(path, contexts=[])


def test_real_complete_tables_for_the_engine(
    routerbench: Loaded, latency_model: LatencyModel
) -> None:
    # An engine without a mask needs finite values everywhere: pick the pool, then complete().
    outcomes = latency_model.apply(routerbench.outcomes, seed=0)
    full = outcomes.complete()
    assert full.n_queries == 3178 - 28
    pool = ["gpt-4-1106-preview", "claude-v2", "meta/llama-2-70b-chat", "mistralai/mistral-7b-chat"]
    four = outcomes.select(models=pool).complete()
    assert four.n_queries == 3178 - 14  # the rows lacking only gpt-3.5 are complete here
    for block in four.contexts:
        assert all(block.mask)
        for name in ("accuracy", "cost", "latency"):
            assert all(math.isfinite(v) for v in getattr(block, name))
    with pytest.raises(DataError, match="known latency"):
        routerbench.outcomes.complete()  # RouterBench has no latency until a model fills it
