"""Fixtures of the replay tests: the real RouterBench and llmperf data, loaded once per session."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from pickllm.replay import LatencyModel, Loaded, load_routerbench

#: The 11 RouterBench models of the shared slice (data/README.md).
_ROUTERBENCH_MODELS = frozenset(
    {
        "gpt-4-1106-preview",
        "gpt-3.5-turbo-1106",
        "claude-v2",
        "claude-v1",
        "claude-instant-v1",
        "meta/llama-2-70b-chat",
        "meta/code-llama-instruct-34b-chat",
        "mistralai/mixtral-8x7b-chat",
        "mistralai/mistral-7b-chat",
        "zero-one-ai/Yi-34B-Chat",
        "WizardLM/WizardLM-13B-V1.2",
    }
)


@pytest.fixture(scope="session")
def routerbench_models() -> frozenset[str]:
    """The 11 models of the shared RouterBench slice, as its README lists them."""
    return _ROUTERBENCH_MODELS


@pytest.fixture(scope="session")
def routerbench_dir(shared_data: Path) -> Path:
    return shared_data / "routerbench"


@pytest.fixture(scope="session")
def llmperf_dir(shared_data: Path) -> Path:
    return shared_data / "llmperf" / "individual"


@pytest.fixture(scope="session")
def routerbench(routerbench_dir: Path) -> Loaded:
    """All six shared CSVs, every model, default options (about 0.7 s: load once)."""
    return load_routerbench(routerbench_dir)


@pytest.fixture(scope="session")
def latency_model(llmperf_dir: Path) -> LatencyModel:
    return LatencyModel.from_llmperf(llmperf_dir)


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[Sequence[Sequence[str]], str], Path]:
    """Write rows (header first) with the csv module, quoting like pandas does; return the path."""

    def write(rows: Sequence[Sequence[str]], name: str = "data.csv") -> Path:
        path = tmp_path / name
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
        return path

    return write
