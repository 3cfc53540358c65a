"""Decision logs: what a router chose, with what probability, and what came of it.

``Router(..., decision_log=PATH)`` writes them (see :class:`DecisionLog` and the schema in
:mod:`pickllm.logs.schema`); :func:`read_log` reads them back for ``pickllm evaluate``;
:func:`export_parquet` writes them as one Parquet table (the ``parquet`` extra).
"""

from __future__ import annotations

from pickllm.logs.parquet import export_parquet
from pickllm.logs.reader import DecisionRecord, LoadedLog, read_log
from pickllm.logs.schema import SCHEMA_VERSION
from pickllm.logs.writer import DecisionLog

__all__ = [
    "SCHEMA_VERSION",
    "DecisionLog",
    "DecisionRecord",
    "LoadedLog",
    "export_parquet",
    "read_log",
]
