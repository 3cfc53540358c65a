"""Real redis-server fixtures for the shared-state tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from redis_servers import RedisServer


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
