"""Real Redis servers for tests and benchmarks: Debian's ``redis-server``, started on a free port
on 127.0.0.1 in a temporary folder, with or without persistence.

Without ``redis-server`` on the PATH the tests skip, unless PICKLLM_REQUIRE_REDIS=1 (set by
.ci/run, which installs it), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REQUIRE_REDIS = os.environ.get("PICKLLM_REQUIRE_REDIS") == "1"


def require_redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        reason = "redis-server not installed (apt-get install redis-server)"
        if REQUIRE_REDIS:
            pytest.fail(f"{reason}; PICKLLM_REQUIRE_REDIS=1, so this is a failure")
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process; ``persistent`` makes it write every write to its append-only
    file before replying (appendfsync always), so a restart loses nothing acknowledged."""

    def __init__(self, folder: Path, *, persistent: bool, replica_of: int | None = None) -> None:
        self.binary = require_redis_server()
        self.folder = folder
        self.persistent = persistent
        self.replica_of = replica_of  # the port of a primary to replicate
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None
        options = {
            "port": str(self.port),
            "bind": "127.0.0.1",
            "dir": str(self.folder),
            "save": "",
            "logfile": "",
            "daemonize": "no",
            "appendonly": "yes" if self.persistent else "no",
            "appendfsync": "always",
        }
        arguments = [part for key, value in options.items() for part in (f"--{key}", value)]
        if self.replica_of is not None:
            arguments += ["--replicaof", "127.0.0.1", str(self.replica_of)]
        self.process = subprocess.Popen(
            [self.binary, *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        # Ready when it says so: the log line, not a timer.
        for line in self.process.stdout:
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError(f"redis-server exited with {self.process.wait()}")
        # Keep draining its log so that the pipe never fills and blocks the server.
        self._drain = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._drain.start()

    def kill(self) -> None:
        """Stop the server the hard way (SIGKILL): only what it had written survives."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self._reap()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self._reap()

    def _reap(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        self.process.wait()
        self._drain.join()
        self.process.stdout.close()
        self.process = None


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds (a generous bound on
    what the code promises, never a measurement)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"still not true after {timeout} s: {predicate}")
        time.sleep(0.01)


class SentinelServer:
    """One redis-sentinel process watching the primary at ``primary_port`` as ``service``: it
    calls the primary down after 1 s without an answer and promotes a replica."""

    def __init__(self, folder: Path, primary_port: int, service: str = "mymaster") -> None:
        require_redis_server()
        binary = shutil.which("redis-sentinel")
        if binary is None:
            reason = "redis-sentinel not installed (apt-get install redis-sentinel)"
            if REQUIRE_REDIS:
                pytest.fail(f"{reason}; PICKLLM_REQUIRE_REDIS=1, so this is a failure")
            pytest.skip(reason)
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "sentinel.conf"
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {folder}\n"
            f"sentinel monitor {service} 127.0.0.1 {primary_port} 1\n"
            f"sentinel down-after-milliseconds {service} 1000\n"
            f"sentinel failover-timeout {service} 10000\n"
        )
        self.process = subprocess.Popen(
            [binary, str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "+monitor" in line:
                break
        else:
            raise RuntimeError(f"redis-sentinel exited with {self.process.wait()}")
        self._drain = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._drain.start()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()
        self._drain.join()
        assert self.process.stdout is not None
        self.process.stdout.close()
