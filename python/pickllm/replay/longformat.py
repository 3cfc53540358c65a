"""The long format: one row per (query, model) outcome, for users' own logs. JSONL or CSV.

Fields (CSV header names or JSON keys):

=================  ========  =======================================================
``query_id``       required  identifies the query within its context (text; a JSON int is
                             accepted and read as text)
``context``        required  the routing context (topic, tenant, task)
``model``          required  the model that answered
``accuracy``       required  score of the answer, in [0, 1]
``cost``           required  USD, >= 0
``latency``        optional  seconds, >= 0; blank / null / absent = unknown
``output_tokens``  optional  >= 0; lets :meth:`pickllm.replay.LatencyModel.apply` fill an unknown
                             latency
=================  ========  =======================================================

A decision log written by ``Router(..., decision_log=DIR)`` (its folder, or one of its
``decisions-*.jsonl`` files) is read directly: each decision with feedback is one row, its query
id ``<router>:<decision id>`` (so each query has one model's cell; :mod:`pickllm.evaluate`
is what judges other policies on such data).

Numbers may be JSON numbers or numeric strings. Other fields are ignored and listed in the report's
``columns_ignored``. Rows are pivoted into an :class:`pickllm.replay.Outcomes`: contexts, queries
and (unless ``models`` is given) models in order of first appearance; a (query, model) pair with no
row is a missing cell (``cells_missing["no_row"]``).

Malformed rows are skipped and counted (``errors="skip"``) or raise a DataError naming file, line
and field (``errors="raise"``): invalid JSON (``invalid_json``), a JSON value that is not an object
(``not_an_object``), wrong CSV field count (``wrong_field_count``), a required field blank or absent
(``<field>_missing``), a label that is not text (``<field>_not_text``), a value that is not a
number, not finite, negative, or (accuracy) outside [0, 1] (``<field>_not_a_number``...), and a
second row for the same (context, query_id, model) (``duplicate_cell``: the first one is kept,
since silently averaging or overwriting would hide a logging bug).

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> _ = path.write_text(
    ...     '{"query_id": "q1", "context": "math", "model": "big", "accuracy": 1, "cost": 0.01,'
    ...     ' "latency": 2.5}\\n'
    ...     '{"query_id": "q1", "context": "math", "model": "small", "accuracy": 0, "cost": 0.001,'
    ...     ' "latency": 0.4}\\n'
    ... )
    >>> outcomes, report = load_long(path)
    >>> outcomes.models, outcomes.context("math").cell(0, 0)
    (('big', 'small'), Cell(accuracy=1.0, cost=0.01, latency=2.5, output_tokens=nan))
    >>> write_long(outcomes, path.with_suffix(".csv"))
    2
    >>> load_long(path.with_suffix(".csv")).outcomes == outcomes
    True
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Final, Literal

from pickllm.replay._builder import OutcomesBuilder
from pickllm.replay._sources import StrPath, expand_paths, open_csv, utf8_lines
from pickllm.replay._values import BadValueError, check_nonnegative, check_unit, number
from pickllm.replay.errors import DataError
from pickllm.replay.outcomes import Cell, Outcomes
from pickllm.replay.report import ErrorMode, Loaded, ReportBuilder

__all__ = ["LONG_FIELDS", "LongFormat", "is_decision_log", "load_long", "write_long"]

#: Every field of the long format, in the order :func:`write_long` writes them.
LONG_FIELDS: Final = (
    "query_id",
    "context",
    "model",
    "accuracy",
    "cost",
    "latency",
    "output_tokens",
)
_LABELS: Final = ("query_id", "context", "model")
_REQUIRED: Final = (*_LABELS, "accuracy", "cost")

#: ``"auto"`` picks by suffix: .jsonl/.ndjson/.json are JSON lines, .csv is CSV.
LongFormat = Literal["auto", "csv", "jsonl"]
_JSONL_SUFFIXES: Final = frozenset({".jsonl", ".ndjson", ".json"})


def load_long(
    source: StrPath | Iterable[StrPath],
    *,
    models: Sequence[str] | None = None,
    contexts: Sequence[str] | None = None,
    drop_incomplete: bool = False,
    errors: ErrorMode = "skip",
    format: LongFormat = "auto",
) -> Loaded:
    """Read long-format files (see the module docstring) into ``(Outcomes, LoadReport)``.

    ``source``: a file, a folder (its .jsonl/.ndjson/.json/.csv files, sorted), or several.
    ``models``: the pool, in this order; rows of other models are counted in ``rows_filtered``.
    ``contexts``: contexts to keep; rows of others are counted in ``rows_filtered``.
    ``drop_incomplete``: drop queries some pool model has no row for, instead of masking the cell.
    """
    suffixes = {".csv", *_JSONL_SUFFIXES}
    items = [Path(source)] if isinstance(source, str | os.PathLike) else [Path(s) for s in source]
    logs = [item for item in items if is_decision_log(item)]
    others = [item for item in items if not is_decision_log(item)]
    paths = expand_paths(others, suffixes) if others or not logs else []
    report = ReportBuilder(errors)
    pool = _selection(models, "models")
    wanted = _selection(contexts, "contexts")
    cells: dict[tuple[str, str], dict[str, Cell]] = {}
    seen_models: dict[str, None] = {}
    sources = [(path, _records(path, _format(path, format), report)) for path in paths]
    sources += [(log, _log_records(log)) for log in logs]
    for path, records in sources:
        report.sources.append(str(path))
        for line, record in records:
            report.rows_read += 1
            row = _validate(str(path), line, record, report)
            if row is None:
                continue
            context, query_id, model, cell = row
            if (wanted is not None and context not in wanted) or (
                pool is not None and model not in pool
            ):
                report.rows_filtered += 1
                continue
            per_model = cells.setdefault((context, query_id), {})
            if model in per_model:
                report.problem(
                    "duplicate_cell",
                    DataError(
                        f"second row for context {context!r}, query {query_id!r}, model "
                        f"{model!r} (the first is kept)",
                        path=str(path),
                        line=line,
                    ),
                )
                continue
            per_model[model] = cell
            seen_models.setdefault(model)
            report.rows_used += 1

    if pool is not None and (absent := [m for m in pool if m not in seen_models]):
        raise DataError(f"model(s) {absent} have no valid row in {', '.join(report.sources)}")
    if wanted is not None and (absent := sorted(set(wanted) - {context for context, _ in cells})):
        raise DataError(f"context(s) {absent} have no valid row in {', '.join(report.sources)}")
    final_pool = pool if pool is not None else list(seen_models)
    builder = OutcomesBuilder(final_pool, report, drop_incomplete=drop_incomplete)
    for (context, query_id), per_model in cells.items():
        builder.add(context, query_id, [per_model.get(m, "no_row") for m in final_pool])
    outcomes = builder.build()
    return Loaded(outcomes, report.build(outcomes))


def write_long(outcomes: Outcomes, path: StrPath, *, format: LongFormat = "auto") -> int:
    """Write every observed cell of ``outcomes`` as one long-format row; return the row count.

    Floats are written with ``repr`` (shortest exact form), so :func:`load_long` gives back the
    same values; unknown latency / output tokens are written as blank (CSV) or null (JSON). Missing
    cells have no row. Pass ``models=outcomes.models`` to :func:`load_long` to get the same model
    order back when the first query lacks some model.
    """
    target = Path(path)
    kind = _format(target, format)
    count = 0
    with target.open("w", newline="", encoding="utf-8") as handle:
        if kind == "csv":
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(LONG_FIELDS)
            for record in outcomes.records():
                writer.writerow(
                    [
                        v if isinstance(v, str) else ("" if math.isnan(v) else repr(v))
                        for v in record
                    ]
                )
                count += 1
        else:
            for record in outcomes.records():
                obj = {
                    k: (None if isinstance(v, float) and math.isnan(v) else v)
                    for k, v in zip(LONG_FIELDS, record, strict=True)
                }
                handle.write(json.dumps(obj, allow_nan=False) + "\n")
                count += 1
    return count


def _selection(names: Sequence[str] | None, what: str) -> list[str] | None:
    if names is None:
        return None
    if isinstance(names, str):  # a lone name would otherwise be read letter by letter
        raise TypeError(f"{what} must be a sequence of names, not the string {names!r}")
    chosen = list(names)
    if not chosen or len(set(chosen)) != len(chosen):
        raise DataError(f"{what} must be a non-empty list of distinct names, got {chosen}")
    return chosen


def _format(path: Path, requested: LongFormat) -> Literal["csv", "jsonl"]:
    if requested in ("csv", "jsonl"):
        return requested
    if requested != "auto":
        raise ValueError(f"format must be 'auto', 'csv' or 'jsonl', got {requested!r}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    raise DataError(
        f"cannot tell the format from the suffix {suffix!r}: pass format='csv' or 'jsonl'",
        path=str(path),
    )


def _records(
    path: Path, kind: Literal["csv", "jsonl"], report: ReportBuilder
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, field -> value) for each record; malformed records are reported, not yielded."""
    if kind == "csv":
        yield from _csv_records(path, report)
    else:
        yield from _jsonl_records(path, report)


def is_decision_log(path: Path) -> bool:
    """A decision log's folder, or one of its files."""
    if path.is_dir():
        return any(path.glob("decisions-*.jsonl"))
    return path.is_file() and fnmatch(path.name, "decisions-*.jsonl")


def _log_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """A decision log's answered decisions as long-format rows; the line is the record's
    position in time order."""
    # Imported here: pickllm.logs raises this package's errors, so importing it at module level
    # would be circular.
    from pickllm.logs.reader import read_log

    for position, r in enumerate(read_log(path).records, 1):
        row = {"query_id": f"{r.router}:{r.id}", "context": r.context, "model": r.model}
        yield position, row | {"accuracy": r.accuracy, "cost": r.cost, "latency": r.latency}


def _csv_records(path: Path, report: ReportBuilder) -> Iterator[tuple[int, dict[str, Any]]]:
    table = open_csv(path)
    header = [h.strip() for h in table.header]
    if len(set(header)) != len(header):
        raise DataError(f"duplicate column names in the header {header}", path=str(path), line=1)
    if absent := [c for c in _REQUIRED if c not in header]:
        raise DataError(
            f"no {absent} column(s): a long-format CSV needs {list(_REQUIRED)}",
            path=str(path),
            line=1,
        )
    for name in header:
        if name not in LONG_FIELDS:
            report.ignore_column(name, str(path))
    for line, values in table.rows:
        if len(values) != len(header):
            report.rows_read += 1
            report.problem(
                "wrong_field_count",
                DataError(
                    f"{len(values)} fields, the header has {len(header)}", path=str(path), line=line
                ),
            )
            continue
        yield line, dict(zip(header, values, strict=True))


def _jsonl_records(path: Path, report: ReportBuilder) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, text in utf8_lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            report.rows_read += 1
            report.problem(
                "invalid_json", DataError(f"invalid JSON: {exc.msg}", path=str(path), line=line)
            )
            continue
        if not isinstance(record, dict):
            report.rows_read += 1
            report.problem(
                "not_an_object",
                DataError(
                    f"expected a JSON object, got {type(record).__name__}",
                    path=str(path),
                    line=line,
                ),
            )
            continue
        for key in record:
            if key not in LONG_FIELDS:
                report.ignore_column(str(key), str(path))
        yield line, record


def _label(value: Any, name: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadValueError(f"{name}_missing", f"{name} is blank or absent")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadValueError(f"{name}_not_text", f"{name} must be text, got {type(value).__name__}")
    return str(value).strip()


def _validate(
    path: str, line: int, record: dict[str, Any], report: ReportBuilder
) -> tuple[str, str, str, Cell] | None:
    """(context, query_id, model, cell) of one record, or None after reporting why not."""
    field = ""
    try:
        labels = {}
        for field in _LABELS:
            labels[field] = _label(record.get(field), field)
        values = {}
        for field in ("accuracy", "cost", "latency", "output_tokens"):
            value = number(record.get(field), field)
            if value is None:
                if field in _REQUIRED:
                    raise BadValueError(f"{field}_missing", f"{field} is blank or absent")
                value = math.nan
            elif field == "accuracy":
                check_unit(value, field)
            else:
                check_nonnegative(value, field)
            values[field] = value
    except BadValueError as bad:
        report.problem(bad.reason, DataError(bad.detail, path=path, line=line, column=field))
        return None
    cell = Cell(values["accuracy"], values["cost"], values["latency"], values["output_tokens"])
    return labels["context"], labels["query_id"], labels["model"], cell
