"""What a loader did with its input: rows read, filtered, skipped (and why), cells missing.

Every loader returns a :class:`Loaded` pair ``(outcomes, report)``. The counts add up, so nothing
is dropped silently::

    rows_read = rows_filtered + sum(rows_skipped.values()) + rows_used

and ``sum(cells_missing.values())`` is the number of mask-0 cells of the returned Outcomes.

Example:
    >>> report = LoadReport(
    ...     sources=("a.csv",), rows_read=10, rows_filtered=2, rows_used=7,
    ...     rows_skipped={"quality_not_a_number": 1}, queries=7, cells=13,
    ...     cells_missing={"blank_quality": 1},
    ... )
    >>> report.rows_skipped_total, report.cells_missing_total
    (1, 1)
    >>> print(report.summary())
    a.csv: 10 rows read, 7 used, 2 filtered out, 1 skipped (quality_not_a_number: 1); 7 queries, \
13 cells observed, 1 missing (blank_quality: 1)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, Literal, NamedTuple

from pickllm.replay.errors import DataError

if TYPE_CHECKING:
    from pickllm.replay.outcomes import Outcomes

__all__ = ["MAX_EXAMPLES", "ErrorMode", "LoadReport", "Loaded"]

#: How a loader treats a malformed row: ``"skip"`` counts it in the report and goes on,
#: ``"raise"`` stops at the first one with a DataError naming file, line and column.
ErrorMode = Literal["skip", "raise"]

#: How many located messages a report keeps (the counts are always complete).
MAX_EXAMPLES: Final = 20


def _frozen(counts: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(sorted(counts.items())))


@dataclass(frozen=True)
class LoadReport:
    """Counts of what a loader read, left out and why. Mappings go from reason to count.

    - ``rows_read``: data rows (CSV records, non-blank JSONL lines, DataFrame rows).
    - ``rows_filtered``: rows left out on purpose by the ``models`` / ``contexts`` options.
    - ``rows_skipped``: malformed rows, by reason (e.g. ``wrong_field_count``).
    - ``rows_used``: rows whose content went into the result or into a dropped query.
    - ``queries_dropped``: queries left out whole, by reason (``no_outcomes``: no model has a cell;
      ``incomplete``: a model lacks a cell and ``drop_incomplete`` was set).
    - ``queries``, ``cells``: queries and observed cells in the returned Outcomes.
    - ``cells_missing``: mask-0 cells of the returned Outcomes, by reason (e.g. ``blank_quality``).
    - ``columns_ignored``: columns the loader does not know and did not read.
    - ``notes``: oddities that lost no data (e.g. ``duplicate_id_renamed``).
    - ``examples``: the first :data:`MAX_EXAMPLES` located messages, ``file:line: column: why``.
    """

    sources: tuple[str, ...]
    rows_read: int
    rows_filtered: int
    rows_used: int
    queries: int
    cells: int
    rows_skipped: Mapping[str, int] = field(default_factory=dict)
    queries_dropped: Mapping[str, int] = field(default_factory=dict)
    cells_missing: Mapping[str, int] = field(default_factory=dict)
    columns_ignored: tuple[str, ...] = ()
    notes: Mapping[str, int] = field(default_factory=dict)
    examples: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Read-only views: the report is frozen, its mappings should be too.
        for name in ("rows_skipped", "queries_dropped", "cells_missing", "notes"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @property
    def rows_skipped_total(self) -> int:
        """Malformed rows, all reasons together."""
        return sum(self.rows_skipped.values())

    @property
    def queries_dropped_total(self) -> int:
        """Queries left out, all reasons together."""
        return sum(self.queries_dropped.values())

    @property
    def cells_missing_total(self) -> int:
        """Mask-0 cells of the returned Outcomes."""
        return sum(self.cells_missing.values())

    def summary(self) -> str:
        """One line for a terminal."""

        def detail(counts: Mapping[str, int]) -> str:
            return ", ".join(f"{k}: {v}" for k, v in counts.items())

        parts = [f"{', '.join(self.sources)}: {self.rows_read} rows read, {self.rows_used} used"]
        if self.rows_filtered:
            parts.append(f", {self.rows_filtered} filtered out")
        if self.rows_skipped:
            parts.append(f", {self.rows_skipped_total} skipped ({detail(self.rows_skipped)})")
        parts.append(f"; {self.queries} queries")
        if self.queries_dropped:
            parts.append(f" ({self.queries_dropped_total} dropped: {detail(self.queries_dropped)})")
        parts.append(f", {self.cells} cells observed")
        if self.cells_missing:
            parts.append(f", {self.cells_missing_total} missing ({detail(self.cells_missing)})")
        if self.columns_ignored:
            parts.append(f"; columns ignored: {', '.join(self.columns_ignored)}")
        if self.notes:
            parts.append(f"; notes: {detail(self.notes)}")
        return "".join(parts)


class Loaded(NamedTuple):
    """What a loader returns: the outcomes and the report of how they were read."""

    outcomes: Outcomes
    report: LoadReport


class ReportBuilder:
    """Mutable counterpart of LoadReport that loaders fill as they go (internal).

    :meth:`problem` is the one place where the ``errors`` mode is applied, so every loader treats
    a malformed row the same way.
    """

    def __init__(self, errors: ErrorMode) -> None:
        if errors not in ("skip", "raise"):
            raise ValueError(f"errors must be 'skip' or 'raise', got {errors!r}")
        self.errors: ErrorMode = errors
        self.sources: list[str] = []
        self.rows_read = 0
        self.rows_filtered = 0
        self.rows_used = 0
        self.rows_skipped: Counter[str] = Counter()
        self.queries_dropped: Counter[str] = Counter()
        self.cells_missing: Counter[str] = Counter()
        self.columns_ignored: list[str] = []
        self.notes: Counter[str] = Counter()
        self.examples: list[str] = []

    def example(self, message: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(message)

    def problem(self, reason: str, error: DataError) -> None:
        """A malformed row: raise ``error`` in "raise" mode, else count it under ``reason``."""
        if self.errors == "raise":
            raise error
        self.rows_skipped[reason] += 1
        self.example(str(error))

    def ignore_column(self, name: str, path: str) -> None:
        label = f"{path}: {name!r}"
        if label not in self.columns_ignored:
            self.columns_ignored.append(label)

    def build(self, outcomes: Outcomes) -> LoadReport:
        return LoadReport(
            sources=tuple(self.sources),
            rows_read=self.rows_read,
            rows_filtered=self.rows_filtered,
            rows_used=self.rows_used,
            queries=outcomes.n_queries,
            cells=outcomes.n_cells,
            rows_skipped=self.rows_skipped,
            queries_dropped=self.queries_dropped,
            cells_missing=self.cells_missing,
            columns_ignored=tuple(self.columns_ignored),
            notes=self.notes,
            examples=tuple(self.examples),
        )
