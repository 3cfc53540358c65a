"""Shared test configuration: hypothesis profiles and the real data in ../shared/data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from redis_servers import RedisServer

# Profiles chosen by HYPOTHESIS_PROFILE: "dev" (default) keeps the 2-core CI quick, "thorough"
# is for a long local run. Deadlines are off: the first call into a fresh router may be slow on a
# loaded machine, and timing is what benchmarks measure, not tests.
settings.register_profile(
    "dev", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Set by .ci/run when it tests the built wheel: pickllm must then come from site-packages, not
#: from python/ of this tree, or a packaging mistake would go unseen.
TEST_INSTALLED = os.environ.get("PICKLLM_TEST_INSTALLED") == "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under PICKLLM_TEST_INSTALLED=1, refuse to test anything but the installed package."""
    if TEST_INSTALLED:
        import pickllm

        where = Path(pickllm.__file__).resolve()
        if where.is_relative_to(REPO_ROOT / "python") or "site-packages" not in where.parts:
            raise pytest.UsageError(f"PICKLLM_TEST_INSTALLED=1 but pickllm comes from {where}")


#: Set by .ci/run: a missing data folder is then a failure, not a skip.
REQUIRE_DATA = os.environ.get("PICKLLM_REQUIRE_DATA") == "1"


def shared_data_dir() -> Path:
    """Where the recorded RouterBench and llmperf data live (../shared/data unless overridden)."""
    override = os.environ.get("PICKLLM_DATA_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips (or fails under .ci/run) when this clone has none."""
    path = shared_data_dir()
    if not (path / "routerbench").is_dir():
        message = (
            f"real recorded data not found at {path}: these tests read RouterBench and llmperf "
            "from ../shared/data (set PICKLLM_DATA_DIR to point elsewhere)"
        )
        if REQUIRE_DATA:
            pytest.fail(message)
        pytest.skip(message)
    return path


# Real redis-server fixtures, for the shared-state and the gateway tests.
@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh server without persistence."""
    server = RedisServer(tmp_path, persistent=False)
    yield server
    server.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh server that fsyncs every write before acknowledging it."""
    server = RedisServer(tmp_path, persistent=True)
    yield server
    server.stop()
