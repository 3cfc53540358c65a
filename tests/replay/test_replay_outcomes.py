"""Outcomes: the layout the Rust engine reads, its invariants, equality, selection, stats."""

from __future__ import annotations

import dataclasses
import math
from array import array
from typing import Any

import pytest

from pickllm.errors import UnknownModelError
from pickllm.replay import Cell, ContextOutcomes, DataError, Outcomes, Record

NAN = math.nan


def block(name: str = "c", **changes: Any) -> ContextOutcomes:
    """Two queries x three models; query 0 lacks model 1, query 1 lacks model 0."""
    fields: dict[str, Any] = {
        "name": name,
        "query_ids": ("q0", "q1"),
        "n_models": 3,
        "accuracy": array("d", [1.0, NAN, 0.5, NAN, 0.0, 1.0]),
        "cost": array("d", [0.02, NAN, 0.001, NAN, 0.003, 0.004]),
        "latency": array("d", [1.5, NAN, NAN, NAN, 0.25, 0.5]),
        "output_tokens": array("d", [10.0, NAN, 3.0, NAN, NAN, 7.0]),
        "mask": array("B", [1, 0, 1, 0, 1, 1]),
    }
    fields.update(changes)
    return ContextOutcomes(**fields)


def outcomes(*blocks: ContextOutcomes) -> Outcomes:
    return Outcomes(models=("x", "y", "z"), contexts=blocks or (block(),))


def test_layout_is_row_major_flat_buffers() -> None:
    b = block()
    assert b.n_queries == 2
    assert b.n_cells == 4
    assert b.index(1, 2) == 5
    assert b.cell(1, 2) == Cell(1.0, 0.004, 0.5, 7.0)
    assert b.cell(0, 1) is None
    for name in ("accuracy", "cost", "latency", "output_tokens"):
        view = memoryview(getattr(b, name))
        assert (view.format, view.itemsize, view.c_contiguous, view.nbytes) == ("d", 8, True, 48)
    mask = memoryview(b.mask)
    assert (mask.format, mask.itemsize, mask.nbytes) == ("B", 1, 6)
    with pytest.raises(IndexError):
        b.index(2, 0)


INVALID = [
    ({"accuracy": array("f", [0.0] * 6)}, "accuracy must be an array\\('d'\\)"),
    ({"mask": [1, 0, 1, 0, 1, 1]}, "mask must be an array\\('B'\\)"),
    ({"cost": array("d", [0.0] * 5)}, "cost has 5 values, expected 2 queries x 3 models = 6"),
    ({"mask": array("B", [1, 0, 1, 0, 1, 2])}, "mask values must be 0 or 1"),
    ({"accuracy": array("d", [1.0, 0.0, 0.5, NAN, 0.0, 1.0])}, "must hold NaN everywhere"),
    ({"accuracy": array("d", [1.5, NAN, 0.5, NAN, 0.0, 1.0])}, "accuracy 1.5 outside"),
    ({"accuracy": array("d", [NAN, NAN, 0.5, NAN, 0.0, 1.0])}, "accuracy nan outside"),
    ({"cost": array("d", [-1.0, NAN, 0.001, NAN, 0.003, 0.004])}, "cost -1.0 is not"),
    ({"latency": array("d", [math.inf, NAN, NAN, NAN, 0.25, 0.5])}, "latency inf is not"),
    ({"query_ids": ("q0", "q0")}, "unique within a context"),
    ({"query_ids": ("q0", "")}, "non-empty strings"),
    ({"query_ids": ()}, "no queries"),
    ({"name": ""}, "context name must be a non-empty string"),
    ({"n_models": 0}, "n_models must be a positive int"),
]


@pytest.mark.parametrize(("changes", "message"), INVALID)
def test_block_invariants(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        block(**changes)


def test_every_query_needs_an_observed_cell() -> None:
    empty_first: dict[str, Any] = {
        f: array("d", [NAN, NAN, NAN, *list(getattr(block(), f))[3:]])
        for f in ("accuracy", "cost", "latency", "output_tokens")
    }
    with pytest.raises(DataError, match="query 'q0': no observed cell"):
        block(mask=array("B", [0, 0, 0, 0, 1, 1]), **empty_first)


def test_outcomes_invariants() -> None:
    with pytest.raises(DataError, match="has 3 model columns, the pool has 2"):
        Outcomes(models=("x", "y"), contexts=(block(),))
    with pytest.raises(DataError, match="model names must be unique"):
        Outcomes(models=("x", "y", "x"), contexts=(block(),))
    with pytest.raises(DataError, match="context names must be unique"):
        outcomes(block("a"), block("a"))
    with pytest.raises(DataError, match="at least one context"):
        Outcomes(models=("x", "y", "z"), contexts=())
    with pytest.raises(DataError, match="at least one model"):
        Outcomes(models=(), contexts=(block(),))


def test_frozen_and_value_equality() -> None:
    data = outcomes()
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.models = ("a",)  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.contexts[0].name = "other"  # type: ignore[misc]
    assert data == outcomes()  # NaN cells compare equal, unlike array's own ==
    assert data != outcomes(block(cost=array("d", [0.02, NAN, 0.001, NAN, 0.003, 0.005])))
    assert data != outcomes(block(query_ids=("q0", "other")))
    with pytest.raises(TypeError):
        hash(data)  # holds mutable arrays


def test_select_reorders_and_drops_empty_queries() -> None:
    data = outcomes(block("a"), block("b"))
    picked = data.select(models=["z", "x"], contexts=["b"])
    assert picked.models == ("z", "x")
    assert picked.context_names == ("b",)
    b = picked.context("b")
    assert b.query_ids == ("q0", "q1")
    assert list(b.mask) == [1, 1, 1, 0]
    assert b.cell(1, 0) == data.context("b").cell(1, 2) == Cell(1.0, 0.004, 0.5, 7.0)
    assert b.cell(1, 1) is None
    only_y = data.select(models=["y"])
    assert only_y.context("a").query_ids == ("q1",)  # q0 has no cell for y
    with pytest.raises(UnknownModelError, match="'w' is not in the pool"):
        data.select(models=["w"])
    with pytest.raises(KeyError, match="no context 'nope'"):
        data.select(contexts=["nope"])
    assert data.select() == data


def test_records_stats_and_latency_complete() -> None:
    data = outcomes()
    records = list(data.records())
    assert len(records) == data.n_cells == 4
    assert records[0] == Record("q0", "c", "x", 1.0, 0.02, 1.5, 10.0)
    assert [r.model for r in records] == ["x", "z", "y", "z"]
    stats = data.stats()["c"]
    assert stats["z"].n == 2
    assert stats["z"].accuracy == pytest.approx(0.75)
    assert stats["z"].latency == pytest.approx(0.5)  # the unknown latency is left out
    assert stats["x"].n == 1
    assert stats["y"].output_tokens != stats["y"].output_tokens
    assert not data.latency_complete
    assert data.select(models=["y"]).latency_complete
    assert data.model_index("z") == 2


def test_complete_keeps_fully_observed_queries() -> None:
    data = outcomes()  # both queries lack one model
    with pytest.raises(DataError, match="no query has a cell for every model"):
        data.complete()
    pair = data.select(models=["z", "x"])  # q0 has both, q1 lacks x
    with pytest.raises(DataError, match="with a known latency"):
        pair.complete()  # q0's z latency is unknown
    kept = pair.complete(require_latency=False)
    assert kept.context("c").query_ids == ("q0",)
    assert list(kept.context("c").mask) == [1, 1]
    assert data.select(models=["z"]).complete(require_latency=False) == data.select(models=["z"])
