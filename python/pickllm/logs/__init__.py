"""Decision logs: what a router chose, with what probability, and what came of it.

``Router(..., decision_log=PATH)`` writes them (see :class:`DecisionLog` and the schema in
:mod:`pickllm.logs.schema`); :func:`read_log` reads them back into memory, :class:`LogStream`
in passes from disk (``pickllm evaluate``, for logs of any length); :func:`export_parquet`
writes them as one Parquet table (the ``parquet`` extra).

The reader and the exporter load on first use: every ``import pickllm`` imports the writer
(the router needs it), and should not pay for the replay data machinery the reader shares.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pickllm.logs.schema import SCHEMA_VERSION
from pickllm.logs.writer import DecisionLog

if TYPE_CHECKING:
    from pickllm.logs.parquet import export_parquet
    from pickllm.logs.reader import DecisionRecord, LoadedLog, read_log
    from pickllm.logs.stream import LogStream

__all__ = [
    "SCHEMA_VERSION",
    "DecisionLog",
    "DecisionRecord",
    "LoadedLog",
    "LogStream",
    "export_parquet",
    "read_log",
]

_LAZY = {
    "DecisionRecord": "reader",
    "LoadedLog": "reader",
    "read_log": "reader",
    "LogStream": "stream",
    "export_parquet": "parquet",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"pickllm.logs.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'pickllm.logs' has no attribute {name!r}")
