"""Decision logs as one Parquet table, for analysis in pandas, Polars, DuckDB or Spark.

Needs pyarrow (the ``parquet`` extra, or ``pip install pyarrow``), imported only here.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

from pickllm.logs.reader import read_log
from pickllm.replay.errors import OptionalDependencyError

__all__ = ["export_parquet"]


def export_parquet(log: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write every decision of the log ``log`` that received feedback to the Parquet file
    ``out``, one row each: the decision's fields, its outcome, ``probabilities`` as a list
    aligned with ``models``, and ``prompt`` as JSON text (null when not logged). Returns the
    number of rows."""
    try:
        # Through importlib: pyarrow has no type information, and its use here is small.
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise OptionalDependencyError(
            "Parquet export needs pyarrow (the parquet extra): pip install pyarrow"
        ) from None
    records = read_log(log).records
    columns = {
        "router": [r.router for r in records],
        "id": [r.id for r in records],
        "time": [r.time for r in records],
        "context": [r.context for r in records],
        "model": [r.model for r in records],
        "probability": [r.probability for r in records],
        "models": [list(r.models) for r in records],
        "probabilities": [list(r.probabilities) for r in records],
        "allowed": [list(r.allowed) for r in records],
        "accuracy": [r.accuracy for r in records],
        "cost": [r.cost for r in records],
        "latency": [r.latency for r in records],
        "reward": [r.reward for r in records],
        "prompt": [None if r.prompt is None else json.dumps(r.prompt) for r in records],
    }
    schema = pa.schema(
        [
            ("router", pa.string()),
            ("id", pa.int64()),
            ("time", pa.float64()),
            ("context", pa.string()),
            ("model", pa.string()),
            ("probability", pa.float64()),
            ("models", pa.list_(pa.string())),
            ("probabilities", pa.list_(pa.float64())),
            ("allowed", pa.list_(pa.string())),
            ("accuracy", pa.float64()),
            ("cost", pa.float64()),
            ("latency", pa.float64()),
            ("reward", pa.float64()),
            ("prompt", pa.string()),
        ]
    )
    pq.write_table(pa.table(columns, schema=schema), Path(out))
    return len(records)
