"""``pickllm serve``: validate the config, then run the gateway on uvicorn.

With ``--workers N`` each worker is a process with its own learners, unless a router names
shared state (``shared = {...}``), through which its workers learn together; metrics switch
to prometheus-client's multiprocess mode so that ``GET /metrics`` adds up every worker.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tempfile
from pathlib import Path

from pickllm.errors import ConfigError
from pickllm.gateway.app import PEERS_ENV
from pickllm.gateway.config import load_config
from pickllm.gateway.connections import LIMITS_ENV, protocol

__all__ = ["serve"]


def serve(config_path: Path, *, host: str, port: int, workers: int) -> int:
    """Run until interrupted; returns the exit status."""
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    config = load_config(config_path)  # fail here, once, rather than in every worker
    server = config.server
    if not server.api_keys and not server.allow_anonymous and not _loopback(host):
        raise ConfigError(
            f"--host {host} is reachable from other machines and [server] names no api_keys: "
            "anyone could call the gateway (and spend its providers' money). Set "
            "server.api_keys, bind to 127.0.0.1, or set server.allow_anonymous = true"
        )
    os.environ["PICKLLM_GATEWAY_CONFIG"] = str(Path(config_path).resolve())
    os.environ[LIMITS_ENV] = f"{server.header_timeout!r} {server.max_connections}"
    os.environ["PICKLLM_GATEWAY_WORKERS"] = str(workers)
    if workers > 1:
        os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="pickllm-metrics-")
        )
        # Feedback may reach another worker than the one that decided: workers hand it on.
        os.environ[PEERS_ENV] = tempfile.mkdtemp(prefix="pickllm-workers-")
        alone = [name for name, r in config.routers.items() if r.shared is None]
        if alone:
            print(
                f"pickllm serve: {workers} workers; routers {alone} name no shared state "
                "(shared = {...}), so each worker learns alone",
                file=sys.stderr,
            )
    import uvicorn

    print(f"pickllm serve: http://{host}:{port}/v1 ({workers} worker(s))", file=sys.stderr)
    uvicorn.run(
        "pickllm.gateway.app:app_from_environment",
        factory=True,
        # A deadline on request headers and a cap on connections (see connections.py)
        http=protocol(),
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )
    return 0


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to anything
