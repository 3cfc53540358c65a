"""Load RouterBench's wide format (CSV, or the published pickled DataFrame) into an Outcomes.

RouterBench (withmartian, arXiv 2403.12031) has one row per prompt and, for each model ``M``,
three columns: ``M`` (quality of M's answer, in [0, 1]; 0.0/1.0 correctness in the shared slice),
``M|total_cost`` (USD) and ``M|model_response`` (a stringified list holding the answer). The row
also has ``sample_id``, ``eval_name`` (the task, used as the context), ``prompt`` and
``oracle_model_to_route_to``. A model is a column ``M`` that has a ``M|total_cost`` column.

What the loader does with imperfect input (every case is counted in the LoadReport):

* blank quality or cost (or NaN in a DataFrame): the cell is missing (mask 0,
  ``cells_missing["blank_quality"]`` / ``["blank_cost"]``); a pool model absent from one of the
  files gives ``cells_missing["column_absent"]``. With ``drop_incomplete=True`` the whole query is
  dropped instead (``queries_dropped["incomplete"]``); a query with no cell at all is always
  dropped (``queries_dropped["no_outcomes"]``).
* malformed rows: wrong number of fields, blank ``eval_name`` or ``sample_id`` (reasons
  ``eval_name_missing``, ``sample_id_missing``), quality that is not
  a number, infinite, or outside [0, 1], negative or non-numeric cost. With ``errors="skip"`` (the
  default) the row is skipped and counted under its reason (``rows_skipped["cost_negative"]``...);
  with ``errors="raise"`` the first one raises a DataError naming file, line and column. Only the
  selected models' cells are checked: a broken column you did not ask for does not cost you rows.
* unknown columns (a bare column without ``|total_cost``, a ``|total_cost`` without its bare
  column, an unknown ``|suffix``) are not read and are listed in ``columns_ignored``.
* the same ``sample_id`` twice in one context (RouterBench reuses ids for different prompts): both
  are kept, the second as ``"<id>#2"`` (``notes["duplicate_id_renamed"]``).
* structural problems raise DataError whatever ``errors`` says: a file without ``sample_id`` or
  ``eval_name`` column, duplicate column names, broken CSV quoting, a requested model or context
  that no file has, nothing usable left. A missing file raises FileNotFoundError.

The output tokens of each cell are estimated from the response length
(:func:`pickllm.replay.estimate_output_tokens`); latency is left unknown (NaN) since RouterBench
has none: fill it with :meth:`pickllm.replay.LatencyModel.apply`.

Example:
    >>> from pickllm.replay import LatencyModel, load_routerbench
    >>> outcomes, report = load_routerbench(
    ...     "../shared/data/routerbench", models=["gpt-4-1106-preview", "mistralai/mistral-7b-chat"]
    ... )  # doctest: +SKIP
    >>> report.queries, outcomes.context_names  # doctest: +SKIP
    (3178, ('arc-challenge', 'mbpp', 'winogrande'))
    >>> latency = LatencyModel.from_llmperf("../shared/data/llmperf/individual")  # doctest: +SKIP
    >>> outcomes = latency.apply(outcomes, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import ast
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pickllm.replay._builder import OutcomesBuilder
from pickllm.replay._sources import (
    PICKLE_SUFFIXES,
    StrPath,
    Table,
    expand_paths,
    open_csv,
    open_pickle,
)
from pickllm.replay._values import BadValueError, check_nonnegative, check_unit, number
from pickllm.replay.errors import DataError
from pickllm.replay.latency import estimate_output_tokens
from pickllm.replay.outcomes import Cell
from pickllm.replay.report import ErrorMode, Loaded, ReportBuilder

__all__ = ["load_routerbench"]

COST_SUFFIX: Final = "|total_cost"
RESPONSE_SUFFIX: Final = "|model_response"
CONTEXT_COLUMN: Final = "eval_name"
ID_COLUMN: Final = "sample_id"
#: Columns RouterBench has besides the model columns; read (the first two) or knowingly unused.
#: "" and "Unnamed: 0" are the index pandas writes into a CSV.
KNOWN_COLUMNS: Final = frozenset(
    {ID_COLUMN, CONTEXT_COLUMN, "prompt", "oracle_model_to_route_to", ""}
)


@dataclass
class _Layout:
    """Where each needed column is in one file."""

    table: Table
    id_col: int
    context_col: int
    models: dict[str, tuple[int, int, int | None]]  # model -> (quality, cost, response or None)


def load_routerbench(
    source: StrPath | Iterable[StrPath],
    *,
    models: Sequence[str] | None = None,
    contexts: Sequence[str] | None = None,
    drop_incomplete: bool = False,
    errors: ErrorMode = "skip",
) -> Loaded:
    """Read RouterBench files into ``(Outcomes, LoadReport)``.

    ``source``: a CSV or pickle (``.pkl``/``.pickle``, needs pandas) file, a folder (its ``*.csv``
    files, sorted by name), or several of these. ``models``: the pool, in this order (default: every
    model of the files, in order of first appearance). ``contexts``: the ``eval_name`` values to
    keep (default: all; other rows are counted in ``rows_filtered``). See the module docstring for
    ``drop_incomplete`` and ``errors``.
    """
    paths = expand_paths(source, {".csv", *PICKLE_SUFFIXES})
    report = ReportBuilder(errors)
    layouts = []
    for path in paths:
        table = open_pickle(path) if path.suffix.lower() in PICKLE_SUFFIXES else open_csv(path)
        report.sources.append(table.path)
        layouts.append(_layout(table, report))

    available = list(dict.fromkeys(m for layout in layouts for m in layout.models))
    pool = _choose(models, available, "model", report.sources)
    wanted = None if contexts is None else set(_choose(contexts, None, "context", []))
    builder = OutcomesBuilder(pool, report, drop_incomplete=drop_incomplete)
    seen_contexts: set[str] = set()
    for layout in layouts:
        for line, values in layout.table.rows:
            report.rows_read += 1
            row = _row(layout, line, values, pool, wanted, report)
            if row is not None:
                seen_contexts.add(row[0])
                report.rows_used += 1
                builder.add(*row)
    if wanted is not None and (absent := sorted(wanted - seen_contexts)):
        raise DataError(
            f"context(s) {absent} not found (or no valid row) in {', '.join(report.sources)}"
        )
    outcomes = builder.build()
    return Loaded(outcomes, report.build(outcomes))


def _choose(
    requested: Sequence[str] | None, available: list[str] | None, what: str, sources: list[str]
) -> list[str]:
    if requested is None:
        assert available is not None
        if not available:
            raise DataError(f"no model column (M with M{COST_SUFFIX}) in {', '.join(sources)}")
        return available
    if isinstance(requested, str):  # a lone name would otherwise be read letter by letter
        raise TypeError(f"{what}s must be a sequence of names, not the string {requested!r}")
    chosen = list(requested)
    if not chosen:
        raise DataError(f"the {what} selection is empty")
    if len(set(chosen)) != len(chosen):
        raise DataError(f"duplicate {what} names in the selection: {chosen}")
    if available is not None and (absent := [m for m in chosen if m not in available]):
        raise DataError(f"{what}(s) {absent} not in {', '.join(sources)}; available: {available}")
    return chosen


def _layout(table: Table, report: ReportBuilder) -> _Layout:
    header = table.header
    duplicates = sorted({c for c in header if header.count(c) > 1})
    if duplicates:
        raise DataError(f"duplicate column names {duplicates}", path=table.path, line=1)
    index = {name: i for i, name in enumerate(header)}
    for required in (ID_COLUMN, CONTEXT_COLUMN):
        if required not in index:
            raise DataError(
                f"no {required!r} column: not RouterBench's wide format "
                f"(columns: {header[:8]}{'...' if len(header) > 8 else ''})",
                path=table.path,
                line=1,
            )
    models: dict[str, tuple[int, int, int | None]] = {}
    for name, i in index.items():
        if name in KNOWN_COLUMNS or name.startswith("Unnamed: "):
            continue
        base, bar, suffix = name.partition("|")
        if not bar and f"{name}{COST_SUFFIX}" in index:
            models[name] = (i, index[f"{name}{COST_SUFFIX}"], index.get(f"{name}{RESPONSE_SUFFIX}"))
        elif bar and f"|{suffix}" in (COST_SUFFIX, RESPONSE_SUFFIX) and base in index:
            continue  # read with its model
        else:
            report.ignore_column(name, table.path)
    for model, (_, _, response) in models.items():
        if response is None:
            # Latency can then only come from fallback_output_tokens: say so once per file.
            report.notes["response_column_absent"] += 1
            report.example(f"{table.path}: no {model}{RESPONSE_SUFFIX} column")
    return _Layout(table, index[ID_COLUMN], index[CONTEXT_COLUMN], models)


def _text(value: Any) -> str:
    """A label cell as text; blank for None and NaN (how pandas marks a missing label)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _row(
    layout: _Layout,
    line: int,
    values: list[Any],
    pool: list[str],
    wanted: set[str] | None,
    report: ReportBuilder,
) -> tuple[str, str, list[Cell | str]] | None:
    """Validate one row: (context, sample_id, cells), or None if filtered or skipped."""
    path = layout.table.path
    if len(values) != len(layout.table.header):
        report.problem(
            "wrong_field_count",
            DataError(
                f"{len(values)} fields, the header has {len(layout.table.header)}",
                path=path,
                line=line,
            ),
        )
        return None
    context = _text(values[layout.context_col])
    if not context:
        report.problem(
            "eval_name_missing",
            DataError("blank eval_name", path=path, line=line, column=CONTEXT_COLUMN),
        )
        return None
    if wanted is not None and context not in wanted:
        report.rows_filtered += 1
        return None
    sample_id = _text(values[layout.id_col])
    if not sample_id:
        report.problem(
            "sample_id_missing",
            DataError("blank sample_id", path=path, line=line, column=ID_COLUMN),
        )
        return None
    cells: list[Cell | str] = []
    for model in pool:
        columns = layout.models.get(model)
        if columns is None:
            cells.append("column_absent")
            continue
        quality_col, cost_col, response_col = columns
        column = model
        try:
            quality = number(values[quality_col], "quality")
            if quality is None:
                cells.append("blank_quality")
                continue
            check_unit(quality, "quality")
            column = model + COST_SUFFIX
            cost = number(values[cost_col], "cost")
            if cost is None:
                cells.append("blank_cost")
                continue
            check_nonnegative(cost, "cost")
        except BadValueError as bad:
            report.problem(bad.reason, DataError(bad.detail, path=path, line=line, column=column))
            return None
        tokens = math.nan
        if response_col is not None:
            response = _response_text(values[response_col], report)
            if response is not None:
                tokens = float(estimate_output_tokens(response))
        cells.append(Cell(quality, cost, math.nan, tokens))
    return context, sample_id, cells


def _response_text(value: Any, report: ReportBuilder) -> str | None:
    """The answer text of a ``M|model_response`` cell; None if blank.

    The CSV holds a stringified Python list (``"['B']"``), the pickle a list or that string. A
    string that does not parse as a list literal is taken as the text itself.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        report.notes["blank_response"] += 1
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            report.notes["blank_response"] += 1
            return None
        if not text.startswith("["):
            return value
        try:
            # literal_eval evaluates literals only: no code from the file runs.
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            report.notes["response_not_a_list"] += 1
            return text
    if isinstance(value, list | tuple):
        return "".join(str(part) for part in value)
    return str(value)
