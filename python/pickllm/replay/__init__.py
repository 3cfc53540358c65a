"""Replay data: recorded outcomes of real LLMs, loaded for replay experiments.

* :func:`load_routerbench`: RouterBench's wide format (CSV, or the published pickled DataFrame).
* :func:`load_long` / :func:`write_long`: one row per (query, model) outcome, JSONL or CSV, for
  users' own logs.
* :class:`LatencyModel`: latency from real llmperf per-request measurements, for data that has
  none (RouterBench), with a documented model-to-provider mapping.
* :class:`Outcomes`: what the loaders return, laid out as flat float64 arrays a replay engine reads
  without copying; :class:`LoadReport` says what was skipped and why.

Example:
    >>> from pickllm.replay import LatencyModel, load_routerbench
    >>> outcomes, report = load_routerbench("../shared/data/routerbench")  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    >>> latency = LatencyModel.from_llmperf("../shared/data/llmperf/individual")  # doctest: +SKIP
    >>> outcomes = latency.apply(outcomes, seed=0)  # doctest: +SKIP
    >>> outcomes.latency_complete  # doctest: +SKIP
    True
"""

from __future__ import annotations

from pickllm.replay.errors import DataError, OptionalDependencyError
from pickllm.replay.latency import (
    CHARS_PER_TOKEN,
    DEFAULT_MODEL_PROFILES,
    LatencyModel,
    ProviderProfile,
    RequestSample,
    estimate_output_tokens,
    load_llmperf_profile,
    load_llmperf_profiles,
)
from pickllm.replay.longformat import LONG_FIELDS, LongFormat, load_long, write_long
from pickllm.replay.outcomes import (
    FLOAT_FIELDS,
    Cell,
    ContextOutcomes,
    ModelStats,
    Outcomes,
    Record,
)
from pickllm.replay.report import MAX_EXAMPLES, ErrorMode, Loaded, LoadReport
from pickllm.replay.routerbench import load_routerbench

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_MODEL_PROFILES",
    "FLOAT_FIELDS",
    "LONG_FIELDS",
    "MAX_EXAMPLES",
    "Cell",
    "ContextOutcomes",
    "DataError",
    "ErrorMode",
    "LatencyModel",
    "LoadReport",
    "Loaded",
    "LongFormat",
    "ModelStats",
    "OptionalDependencyError",
    "Outcomes",
    "ProviderProfile",
    "Record",
    "RequestSample",
    "estimate_output_tokens",
    "load_llmperf_profile",
    "load_llmperf_profiles",
    "load_long",
    "load_routerbench",
    "write_long",
]
