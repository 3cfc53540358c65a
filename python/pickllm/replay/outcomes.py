"""Recorded outcomes of a pool of models on a set of queries, the input of a replay.

An :class:`Outcomes` holds, for every context (RouterBench's ``eval_name``, a tenant, a task type),
the queries of that context and, for each query and each model of the pool, what that model did:
accuracy in [0, 1], cost in USD, latency in seconds, and the number of output tokens (used to
estimate latency when the data has none).

Layout (what the Rust replay engine reads through the buffer protocol, one memcpy per array):

* ``Outcomes.models``: the pool, a tuple of names; column ``j`` of every array is ``models[j]``.
* ``Outcomes.contexts``: a tuple of :class:`ContextOutcomes`, one per context, in the order the
  data first mentions them.
* In a :class:`ContextOutcomes` with ``Q`` queries and ``M`` models, ``accuracy``, ``cost``,
  ``latency`` and ``output_tokens`` are flat ``array('d')`` (float64) of length ``Q * M`` in
  row-major order: the cell of query ``q`` and model ``j`` is at index ``q * M + j``. ``mask`` is an
  ``array('B')`` (uint8) of the same length: 1 where the cell was observed, 0 where it is missing.
* A missing cell (mask 0) holds NaN in all four arrays. An observed cell (mask 1) holds a finite
  accuracy in [0, 1] and a finite cost >= 0; its latency and output tokens are finite and >= 0, or
  NaN when the data does not know them (RouterBench has no latency: see
  :meth:`pickllm.replay.LatencyModel.apply`).
* Every query has at least one observed cell; query ids are unique within a context.

These invariants are checked when an object is built, so a consumer can rely on them. The classes
are frozen; the arrays are shared, not copied, so do not modify them in place.

Example:
    >>> from array import array
    >>> nan = float("nan")
    >>> block = ContextOutcomes(
    ...     name="math",
    ...     query_ids=("q1", "q2"),
    ...     n_models=2,
    ...     accuracy=array("d", [1.0, 0.0, nan, 1.0]),
    ...     cost=array("d", [0.01, 0.001, nan, 0.002]),
    ...     latency=array("d", [2.5, 0.4, nan, 0.5]),
    ...     output_tokens=array("d", [120.0, 80.0, nan, 90.0]),
    ...     mask=array("B", [1, 1, 0, 1]),
    ... )
    >>> data = Outcomes(models=("big", "small"), contexts=(block,))
    >>> data.context("math").cell(1, 1)
    Cell(accuracy=1.0, cost=0.002, latency=0.5, output_tokens=90.0)
    >>> data.context("math").cell(1, 0) is None
    True
    >>> data.n_queries, data.n_cells
    (2, 3)
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

from pickllm.errors import UnknownModelError
from pickllm.replay.errors import DataError

__all__ = [
    "FLOAT_FIELDS",
    "Cell",
    "ContextOutcomes",
    "ModelStats",
    "Outcomes",
    "Record",
]

#: The float64 arrays of a :class:`ContextOutcomes`, in a fixed order.
FLOAT_FIELDS: Final = ("accuracy", "cost", "latency", "output_tokens")

NAN: Final = math.nan


class Cell(NamedTuple):
    """One observed outcome: what one model did on one query."""

    accuracy: float
    cost: float
    latency: float
    output_tokens: float


class Record(NamedTuple):
    """One observed cell with its coordinates (the long format's row, fields in its order)."""

    query_id: str
    context: str
    model: str
    accuracy: float
    cost: float
    latency: float
    output_tokens: float


class ModelStats(NamedTuple):
    """Means of one model's observed cells in one context (NaN when no cell has the value)."""

    n: int
    accuracy: float
    cost: float
    latency: float
    output_tokens: float


@dataclass(frozen=True, eq=False)
class ContextOutcomes:
    """The queries of one context and every model's outcome on each (see the module docstring).

    Equality compares values, with NaN equal to NaN (missing cells are NaN on both sides).
    """

    name: str
    query_ids: tuple[str, ...]
    n_models: int
    accuracy: array[float]
    cost: array[float]
    latency: array[float]
    output_tokens: array[float]
    mask: array[int]

    def __post_init__(self) -> None:
        _check_block(self)

    @property
    def n_queries(self) -> int:
        """Number of queries (rows)."""
        return len(self.query_ids)

    @property
    def n_cells(self) -> int:
        """Number of observed cells (mask 1)."""
        return sum(self.mask)

    def index(self, query: int, model: int) -> int:
        """Flat index of the cell of query number ``query`` and model number ``model``."""
        if not (0 <= query < self.n_queries and 0 <= model < self.n_models):
            raise IndexError(
                f"cell ({query}, {model}) outside {self.n_queries} queries x {self.n_models} models"
            )
        return query * self.n_models + model

    def cell(self, query: int, model: int) -> Cell | None:
        """The outcome of model number ``model`` on query number ``query``; None if missing."""
        i = self.index(query, model)
        if not self.mask[i]:
            return None
        return Cell(self.accuracy[i], self.cost[i], self.latency[i], self.output_tokens[i])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ContextOutcomes):
            return NotImplemented
        return (
            self.name == other.name
            and self.query_ids == other.query_ids
            and self.n_models == other.n_models
            and self.mask == other.mask
            and all(
                _same_floats(getattr(self, field), getattr(other, field)) for field in FLOAT_FIELDS
            )
        )


@dataclass(frozen=True, eq=False)
class Outcomes:
    """Outcomes of a pool of models, per context (see the module docstring for the layout)."""

    models: tuple[str, ...]
    contexts: tuple[ContextOutcomes, ...]

    def __post_init__(self) -> None:
        if not self.models:
            raise DataError("an Outcomes needs at least one model")
        if any(not isinstance(m, str) or not m for m in self.models):
            raise DataError(f"model names must be non-empty strings: {self.models!r}")
        if len(set(self.models)) != len(self.models):
            raise DataError(f"model names must be unique: {self.models!r}")
        if not self.contexts:
            raise DataError("an Outcomes needs at least one context")
        names = [c.name for c in self.contexts]
        if len(set(names)) != len(names):
            raise DataError(f"context names must be unique: {names!r}")
        for block in self.contexts:
            if block.n_models != len(self.models):
                raise DataError(
                    f"context {block.name!r} has {block.n_models} model columns, "
                    f"the pool has {len(self.models)}"
                )

    @property
    def context_names(self) -> tuple[str, ...]:
        """The contexts, in order."""
        return tuple(c.name for c in self.contexts)

    @property
    def n_queries(self) -> int:
        """Number of queries over all contexts."""
        return sum(c.n_queries for c in self.contexts)

    @property
    def n_cells(self) -> int:
        """Number of observed cells over all contexts."""
        return sum(c.n_cells for c in self.contexts)

    @property
    def latency_complete(self) -> bool:
        """Whether every observed cell has a latency (a replay that scores latency needs this)."""
        return all(
            not math.isnan(block.latency[i])
            for block in self.contexts
            for i, present in enumerate(block.mask)
            if present
        )

    def context(self, name: str) -> ContextOutcomes:
        """The block of context ``name``; KeyError naming the known contexts if absent."""
        for block in self.contexts:
            if block.name == name:
                return block
        raise KeyError(f"no context {name!r}; contexts: {list(self.context_names)}")

    def model_index(self, model: str) -> int:
        """Column of ``model`` in every array."""
        try:
            return self.models.index(model)
        except ValueError:
            raise UnknownModelError(
                f"model {model!r} is not in the pool {list(self.models)}"
            ) from None

    def records(self) -> Iterator[Record]:
        """Every observed cell, context by context, query by query, model by model."""
        for block in self.contexts:
            for q, query_id in enumerate(block.query_ids):
                for j, model in enumerate(self.models):
                    cell = block.cell(q, j)
                    if cell is not None:
                        yield Record(query_id, block.name, model, *cell)

    def stats(self) -> dict[str, dict[str, ModelStats]]:
        """Per context, per model: number of observed cells and the means of each value.

        Example (RouterBench): ``stats()["mbpp"]["gpt-4-1106-preview"].accuracy``.
        """
        result: dict[str, dict[str, ModelStats]] = {}
        m = len(self.models)
        for block in self.contexts:
            per_model: dict[str, ModelStats] = {}
            for j, model in enumerate(self.models):
                cells = [q * m + j for q in range(block.n_queries) if block.mask[q * m + j]]
                per_model[model] = ModelStats(
                    len(cells), *(_mean(getattr(block, f), cells) for f in FLOAT_FIELDS)
                )
            result[block.name] = per_model
        return result

    def select(
        self, models: Sequence[str] | None = None, contexts: Sequence[str] | None = None
    ) -> Outcomes:
        """A copy restricted to ``models`` (in that order) and ``contexts`` (in that order).

        Queries left with no observed cell are dropped, as the loaders do: a replay cannot use them.
        Raises UnknownModelError / KeyError for names that are not there, DataError if nothing is
        left.
        """
        model_list = list(self.models) if models is None else list(models)
        columns = [self.model_index(name) for name in model_list]
        names = list(self.context_names) if contexts is None else list(contexts)
        m = len(self.models)
        return self._subset(
            model_list,
            [self.context(name) for name in names],
            lambda b, q: any(b.mask[q * m + j] for j in columns),
            f"no observed cell left for models {model_list} in contexts {names}",
        )

    def complete(self, *, require_latency: bool = True) -> Outcomes:
        """A copy keeping only the queries every model has a cell for (and a latency, by default).

        What an engine that cannot handle missing cells needs: every value of the copy is finite.
        Select the pool first: RouterBench's arc-challenge rows lacking only gpt-3.5 are complete
        for a pool without it.

        >>> nan = float("nan")
        >>> block = ContextOutcomes("c", ("q1", "q2"), 2, array("d", [1.0, 0.0, 1.0, nan]),
        ...     array("d", [0.1, 0.2, 0.1, nan]), array("d", [1.0, 2.0, 1.0, nan]),
        ...     array("d", [5.0, 5.0, 5.0, nan]), array("B", [1, 1, 1, 0]))
        >>> Outcomes(("a", "b"), (block,)).complete().context("c").query_ids
        ('q1',)
        """
        m = len(self.models)

        def keep(b: ContextOutcomes, q: int) -> bool:
            cells = range(q * m, (q + 1) * m)
            return all(b.mask[i] for i in cells) and not (
                require_latency and any(math.isnan(b.latency[i]) for i in cells)
            )

        return self._subset(
            list(self.models),
            list(self.contexts),
            keep,
            "no query has a cell for every model"
            + (" with a known latency" if require_latency else ""),
        )

    def _subset(
        self,
        models: list[str],
        blocks: list[ContextOutcomes],
        keep: Callable[[ContextOutcomes, int], bool],
        empty_message: str,
    ) -> Outcomes:
        """Copy ``blocks`` with the ``models`` columns and the queries ``keep`` accepts."""
        columns = [self.model_index(name) for name in models]
        m_old = len(self.models)
        new_blocks = []
        for block in blocks:
            rows = [q for q in range(block.n_queries) if keep(block, q)]
            if not rows:
                continue
            order = [q * m_old + j for q in rows for j in columns]
            acc, cost, lat, tok = (
                array("d", [getattr(block, f)[i] for i in order]) for f in FLOAT_FIELDS
            )
            new_blocks.append(
                ContextOutcomes(
                    name=block.name,
                    query_ids=tuple(block.query_ids[q] for q in rows),
                    n_models=len(columns),
                    accuracy=acc,
                    cost=cost,
                    latency=lat,
                    output_tokens=tok,
                    mask=array("B", [block.mask[i] for i in order]),
                )
            )
        if not new_blocks:
            raise DataError(empty_message)
        return Outcomes(models=tuple(models), contexts=tuple(new_blocks))

    def replace_context(self, block: ContextOutcomes) -> Outcomes:
        """A copy with the block of the same name replaced by ``block``."""
        self.context(block.name)  # KeyError if absent
        return replace(
            self, contexts=tuple(block if c.name == block.name else c for c in self.contexts)
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Outcomes):
            return NotImplemented
        return self.models == other.models and self.contexts == other.contexts


def _same_floats(a: array[float], b: array[float]) -> bool:
    # NaN marks "unknown" here, so two unknowns are equal; array's own == says NaN != NaN.
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )


def _mean(values: array[float], cells: list[int]) -> float:
    known = [values[i] for i in cells if not math.isnan(values[i])]
    return math.fsum(known) / len(known) if known else NAN


def _check_block(block: ContextOutcomes) -> None:
    """Enforce the layout and value invariants the module docstring promises."""
    where = f"context {block.name!r}"
    if not isinstance(block.name, str) or not block.name:
        raise DataError(f"a context name must be a non-empty string, got {block.name!r}")
    if not isinstance(block.n_models, int) or block.n_models < 1:
        raise DataError(f"{where}: n_models must be a positive int, got {block.n_models!r}")
    if not block.query_ids:
        raise DataError(f"{where}: no queries")
    if any(not isinstance(q, str) or not q for q in block.query_ids):
        raise DataError(f"{where}: query ids must be non-empty strings")
    if len(set(block.query_ids)) != len(block.query_ids):
        raise DataError(f"{where}: query ids must be unique within a context")
    size = len(block.query_ids) * block.n_models
    for field in (*FLOAT_FIELDS, "mask"):
        values = getattr(block, field)
        typecode = "B" if field == "mask" else "d"
        if not isinstance(values, array) or values.typecode != typecode:
            raise DataError(f"{where}: {field} must be an array({typecode!r})")
        if len(values) != size:
            raise DataError(
                f"{where}: {field} has {len(values)} values, expected "
                f"{block.n_queries} queries x {block.n_models} models = {size}"
            )
    acc, cost, lat, tok = block.accuracy, block.cost, block.latency, block.output_tokens
    m = block.n_models
    for q, query_id in enumerate(block.query_ids):
        if not any(block.mask[q * m : (q + 1) * m]):
            # A replay could not use it, and the long format could not even write it down.
            raise DataError(f"{where}, query {query_id!r}: no observed cell")
    for i, present in enumerate(block.mask):
        q, j = divmod(i, block.n_models)
        cell = f"{where}, query {block.query_ids[q]!r}, model #{j}"
        if present == 0:
            if not all(math.isnan(a[i]) for a in (acc, cost, lat, tok)):
                raise DataError(f"{cell}: a missing cell (mask 0) must hold NaN everywhere")
        elif present == 1:
            if not 0.0 <= acc[i] <= 1.0:  # also rejects NaN
                raise DataError(f"{cell}: accuracy {acc[i]!r} outside [0, 1]")
            if not (0.0 <= cost[i] < math.inf):
                raise DataError(f"{cell}: cost {cost[i]!r} is not a finite value >= 0")
            for name, value in (("latency", lat[i]), ("output_tokens", tok[i])):
                if not (math.isnan(value) or 0.0 <= value < math.inf):
                    raise DataError(f"{cell}: {name} {value!r} is not NaN or a finite value >= 0")
        else:
            raise DataError(f"{cell}: mask values must be 0 or 1, got {present}")
