"""Feedback hand-off between the workers of ``pickllm serve --workers N``.

A decision's feedback may reach another worker than the one that made it. Each worker listens on
a Unix socket in a folder the gateway created (``PICKLLM_GATEWAY_PEERS``), named by its token;
a worker hands feedback on to the worker whose token the decision id carries. The address comes
from the gateway, never from the client: the token must match :data:`WORKER_TOKEN` (12 hex
digits, so no path can hide in it) and name a socket the gateway's workers created in that
folder; the exchange is bounded by :data:`HANDOFF_TIMEOUT_S` and by the size of the reply.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pickllm.gateway.errors import APIError, UnknownDecisionError
from pickllm.gateway.feedback import WORKER_TOKEN

__all__ = ["HANDOFF_TIMEOUT_S", "Peers"]

logger = logging.getLogger("pickllm.gateway")

#: The longest a hand-off to another worker may take (a stopped worker cannot hold a request).
HANDOFF_TIMEOUT_S = 5.0
#: The longest line a hand-off exchanges.
_MAX_LINE = 4096

#: Settles one decision on this worker: (decision id, accuracy, principal); raises APIError.
Settle = Callable[[str, float, str], None]


class Peers:
    """This worker's socket in the peers folder, and hand-offs to the other workers."""

    def __init__(self, folder: Path, token: str, settle: Settle) -> None:
        self.folder = folder
        self.token = token
        self._settle = settle
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.folder / f"{self.token}.sock"), limit=_MAX_LINE
        )

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def hand_off(
        self, owner: str, gid: str, accuracy: float, principal: str
    ) -> tuple[int, dict[str, Any]]:
        """Hand feedback to the worker ``owner`` (a token from a checked decision id)."""
        unknown = UnknownDecisionError(f"unknown decision {gid!r}")
        path = self.folder / f"{owner}.sock"
        if WORKER_TOKEN.match(owner) is None or not path.is_socket():
            return unknown.status, unknown.body()  # no such worker (any more)
        try:
            async with asyncio.timeout(HANDOFF_TIMEOUT_S):
                reader, writer = await asyncio.open_unix_connection(path, limit=_MAX_LINE)
                try:
                    request = {"decision": gid, "accuracy": accuracy, "principal": principal}
                    writer.write(json.dumps(request).encode() + b"\n")
                    await writer.drain()
                    reply = json.loads(await reader.readline())
                    status, body = int(reply["status"]), dict(reply["body"])
                finally:
                    writer.close()
        except (OSError, TimeoutError, ValueError, KeyError, TypeError) as error:
            # The worker is gone, stopped or confused: its decisions cannot be reached now.
            logger.warning(
                "pickllm gateway: feedback hand-off to worker %s failed: %s",
                owner,
                type(error).__name__,
            )
            failed = APIError(
                "the worker that made this decision did not answer; try again later",
                status=503,
                type="server_error",
                code="worker_unavailable",
            )
            return failed.status, failed.body()
        return status, body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HANDOFF_TIMEOUT_S):
                request = json.loads(await reader.readline())
                gid = str(request["decision"])
                try:
                    self._settle(gid, float(request["accuracy"]), str(request["principal"]))
                    reply: dict[str, Any] = {
                        "status": 200,
                        "body": {"decision": gid, "accepted": True},
                    }
                except APIError as error:
                    reply = {"status": error.status, "body": error.body()}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, TimeoutError, ValueError, KeyError, TypeError):
            pass  # a broken peer: it reports its own failure
        finally:
            writer.close()
