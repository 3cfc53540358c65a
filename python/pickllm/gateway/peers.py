"""Exchanges between the workers of ``pickllm serve --workers N``: feedback hand-off, and
questions for the stats and the decision explorer.

A decision's feedback may reach another worker than the one that made it. Each worker listens on
a Unix socket in a folder the gateway created (``PICKLLM_GATEWAY_PEERS``), named by its token;
a worker hands feedback on to the worker whose token the decision id carries. The address comes
from the gateway, never from the client: the token must match :data:`WORKER_TOKEN` (12 hex
digits, so no path can hide in it) and name a socket the gateway's workers created in that
folder; the exchange is bounded by :data:`HANDOFF_TIMEOUT_S` and by the size of the reply.

The same sockets answer questions (:meth:`Peers.ask`, :meth:`Peers.ask_all`): a request line
with an ``op`` (``stats``, ``decision``, ``decisions``), answered by the worker's ``answer``
function with one JSON line of at most :data:`MAX_ANSWER_BYTES`.
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

__all__ = ["ASK_TIMEOUT_S", "HANDOFF_TIMEOUT_S", "MAX_ANSWER_BYTES", "Peers"]

logger = logging.getLogger("pickllm.gateway")

#: The longest a hand-off to another worker may take (a stopped worker cannot hold a request).
HANDOFF_TIMEOUT_S = 5.0
#: The longest a question to another worker may take: a stopped worker delays the stats by
#: at most this much (and is then reported missing).
ASK_TIMEOUT_S = 2.0
#: The longest line a hand-off exchanges.
_MAX_LINE = 4096
#: The longest answer to a question (a worker's stats of 10,000 contexts fit many times over).
MAX_ANSWER_BYTES = 64 * 1024 * 1024

#: Settles one decision on this worker: (decision id, accuracy, principal); raises APIError.
Settle = Callable[[str, float, str], None]
#: Answers a question of another worker (a request with an ``op``) with a JSON-able value.
Answer = Callable[[dict[str, Any]], Any]


class Peers:
    """This worker's socket in the peers folder, and hand-offs to the other workers."""

    def __init__(
        self, folder: Path, token: str, settle: Settle, answer: Answer | None = None
    ) -> None:
        self.folder = folder
        self.token = token
        self._settle = settle
        self._answer = answer
        self._server: asyncio.Server | None = None

    def others(self) -> list[str]:
        """The tokens of the other workers listening now."""
        return sorted(
            path.stem
            for path in self.folder.glob("*.sock")
            if path.stem != self.token and WORKER_TOKEN.match(path.stem) and path.is_socket()
        )

    async def ask(self, token: str, question: dict[str, Any]) -> Any:
        """Worker ``token``'s answer to ``question``; raises OSError, TimeoutError or
        ValueError when it is gone, stopped or confused (FileNotFoundError: no such worker).
        The socket of a worker that died (nothing listens on it) is removed."""
        path = self.folder / f"{token}.sock"
        if WORKER_TOKEN.match(token) is None or not path.is_socket():
            raise FileNotFoundError(token)
        async with asyncio.timeout(ASK_TIMEOUT_S):
            try:
                reader, writer = await asyncio.open_unix_connection(path, limit=MAX_ANSWER_BYTES)
            except ConnectionRefusedError:
                path.unlink(missing_ok=True)  # its worker died: its decisions are gone too
                raise
            try:
                writer.write(json.dumps(question).encode() + b"\n")
                await writer.drain()
                reply = json.loads(await reader.readline())
            finally:
                writer.close()
        if not isinstance(reply, dict) or "answer" not in reply:
            raise ValueError("not an answer")
        return reply["answer"]

    async def ask_all(self, question: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Every other worker's answer to ``question``, by token, and the tokens of those that
        did not answer (each logged)."""
        tokens = self.others()
        replies = await asyncio.gather(
            *(self.ask(t, question) for t in tokens), return_exceptions=True
        )
        answers, missing = {}, []
        for token, reply in zip(tokens, replies, strict=True):
            if isinstance(reply, BaseException):
                if not isinstance(reply, OSError | TimeoutError | ValueError):
                    raise reply
                logger.warning(
                    "pickllm gateway: worker %s did not answer %s: %s",
                    token,
                    question.get("op"),
                    type(reply).__name__,
                )
                missing.append(token)
            else:
                answers[token] = reply
        return answers, missing

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
                if request.get("op", "feedback") != "feedback":
                    if self._answer is None:
                        return
                    answer = {"answer": self._answer(request)}
                    writer.write(json.dumps(answer).encode() + b"\n")
                    await writer.drain()
                    return
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
