"""Assemble an Outcomes query by query (internal, shared by every loader)."""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field

from pickllm.replay.errors import DataError
from pickllm.replay.outcomes import FLOAT_FIELDS, Cell, ContextOutcomes, Outcomes
from pickllm.replay.report import ReportBuilder

_MISSING = (math.nan,) * len(FLOAT_FIELDS)


@dataclass
class _Block:
    query_ids: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    values: dict[str, array[float]] = field(
        default_factory=lambda: {f: array("d") for f in FLOAT_FIELDS}
    )
    mask: array[int] = field(default_factory=lambda: array("B"))


class OutcomesBuilder:
    """Collects queries into per-context blocks, applying the drop and missing-cell rules.

    A query with no observed cell is dropped (``no_outcomes``): a replay could not use it. With
    ``drop_incomplete`` a query lacking any model's cell is dropped too (``incomplete``); otherwise
    the cell is masked and counted under the reason the loader gives.
    """

    def __init__(self, models: Sequence[str], report: ReportBuilder, *, drop_incomplete: bool):
        self.models = tuple(models)
        self.report = report
        self.drop_incomplete = drop_incomplete
        self.blocks: dict[str, _Block] = {}

    def add(self, context: str, query_id: str, cells: Sequence[Cell | str]) -> None:
        """Add one query; ``cells[j]`` is model j's Cell, or the reason why it is missing."""
        missing = [c for c in cells if isinstance(c, str)]
        if len(missing) == len(cells):
            self.report.queries_dropped["no_outcomes"] += 1
            return
        if missing and self.drop_incomplete:
            self.report.queries_dropped["incomplete"] += 1
            return
        block = self.blocks.setdefault(context, _Block())
        if query_id in block.seen:
            # RouterBench reuses some sample_ids for different prompts (14 arc-challenge ids in
            # the shared slice, with different prompts and costs): they are distinct queries, so
            # keep both under distinct ids rather than merging or dropping one.
            k = 2
            while f"{query_id}#{k}" in block.seen:
                k += 1
            query_id = f"{query_id}#{k}"
            self.report.notes["duplicate_id_renamed"] += 1
        block.seen.add(query_id)
        block.query_ids.append(query_id)
        for c in cells:
            if isinstance(c, str):
                self.report.cells_missing[c] += 1
                values: Sequence[float] = _MISSING
                block.mask.append(0)
            else:
                values = c
                block.mask.append(1)
            for name, value in zip(FLOAT_FIELDS, values, strict=True):
                block.values[name].append(value)

    def build(self) -> Outcomes:
        """The Outcomes; DataError naming the sources if no query survived."""
        if not self.blocks:
            r = self.report
            raise DataError(
                f"no usable query in {', '.join(r.sources) or 'the input'}: "
                f"{r.rows_read} rows read, {r.rows_filtered} filtered out, "
                f"skipped {dict(r.rows_skipped)}, queries dropped {dict(r.queries_dropped)}"
                + (f"; first problem: {r.examples[0]}" if r.examples else "")
            )
        return Outcomes(
            models=self.models,
            contexts=tuple(
                ContextOutcomes(
                    name=name,
                    query_ids=tuple(b.query_ids),
                    n_models=len(self.models),
                    mask=b.mask,
                    **b.values,
                )
                for name, b in self.blocks.items()
            ),
        )
