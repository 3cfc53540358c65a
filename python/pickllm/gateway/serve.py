"""``pickllm serve``: validate the config, then run the gateway on uvicorn.

With ``--workers N`` each worker is a process with its own learners, unless a router names
shared state (``shared = {...}``), through which its workers learn together; metrics switch
to prometheus-client's multiprocess mode so that ``GET /metrics`` adds up every worker.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import sys
import tempfile
from pathlib import Path

from pickllm.errors import ConfigError
from pickllm.gateway.app import PEERS_ENV
from pickllm.gateway.config import load_config
from pickllm.gateway.connections import LIMITS_ENV, protocol

__all__ = ["serve"]


def serve(config_path: Path, *, host: str, port: int, workers: int) -> int:
    """Run until interrupted; returns the exit status.

    Everything that can be wrong before serving is checked first, once, and raised as one
    ConfigError (the CLI prints one line and exits 2) before the banner: the config, the
    environment variables its ``env:`` references name, and the address.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    config = load_config(config_path, workers)  # fail here, once, not in every worker
    config.check_secrets()
    server = config.server
    if not server.api_keys and not server.allow_anonymous and not _loopback(host):
        raise ConfigError(
            f"--host {host} is reachable from other machines and [server] names no api_keys: "
            "anyone could call the gateway (and spend its providers' money). Set "
            "server.api_keys, bind to 127.0.0.1, or set server.allow_anonymous = true"
        )
    _check_address(host, port)
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


def _check_address(host: str, port: int) -> None:
    """Raise ConfigError unless ``host:port`` can be listened on now (in use, no such address,
    not allowed). Bound as uvicorn binds (SO_REUSEADDR), then released for it: a port taken in
    between is still reported, by uvicorn."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ConfigError(f"--host {host!r}: {error.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ConfigError(f"cannot listen on {host}:{port}: {error.strerror}") from None
