"""The gateway's ASGI app: OpenAI-compatible endpoints in front of configured upstreams.

``model`` in a request names a router (the learner picks the upstream) or a configured model
(passed through, still measured). Responses carry what happened in ``x-pickllm-*`` headers;
``POST /v1/feedback`` completes a decision's reward later (see :mod:`pickllm.gateway.feedback`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from pickllm._core import Decision
from pickllm.attempts import Attempt, Ticket
from pickllm.backends.openai import OpenAICompatible
from pickllm.errors import DecisionError, PickLLMError
from pickllm.gateway.config import GatewayConfig, JudgeConfig, load_config, resolve_secret
from pickllm.gateway.errors import APIError, UnknownDecisionError
from pickllm.gateway.feedback import FeedbackStore, Outcome, Pending
from pickllm.gateway.metrics import BREAKER_VALUES, CONTENT_TYPE_LATEST, Metrics
from pickllm.gateway.proxy import DONE, Answer, Limits, Stream, Upstream, UpstreamError
from pickllm.gateway.routes import RoutedModels
from pickllm.gateway.shared_metrics import SharedStateGauges
from pickllm.routing import DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES
from pickllm.scorers.judge import DEFAULT_RUBRIC, LLMJudge

__all__ = ["CONFIG_ENV", "Gateway", "app_from_environment", "create_app"]

logger = logging.getLogger("pickllm.gateway")

#: Where ``pickllm serve`` tells its workers the config file is.
CONFIG_ENV = "PICKLLM_GATEWAY_CONFIG"
#: With several workers: the folder where each worker listens (a Unix socket named by its
#: token) for feedback on its decisions that reached another worker.
PEERS_ENV = "PICKLLM_GATEWAY_PEERS"
#: The request header, and the body field, that name a request's context.
CONTEXT_HEADER = "x-pickllm-context"
CONTEXT_FIELD = "pickllm_context"
_MAX_CONTEXT = 256


class Gateway:
    """Everything one worker holds: routers, upstreams, pending feedback and metrics."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.keys = tuple(
            resolve_secret(key, f"server.api_keys[{i}]").encode()
            for i, key in enumerate(config.server.api_keys)
        )
        self.api_keys = {
            name: None if m.api_key is None else resolve_secret(m.api_key, f"models.{name}.api_key")
            for name, m in config.models.items()
        }
        self.routers = {name: RoutedModels(name, r, config) for name, r in config.routers.items()}
        self._judge_backends: list[OpenAICompatible] = []
        self.judges = {
            name: self._judge_of(r.judge) for name, r in config.routers.items() if r.judge
        }
        self._judging: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(config.server.metrics_contexts)
        self.shared_gauges = SharedStateGauges(self.metrics.registry)
        self.store = FeedbackStore(self._settled)
        self.upstreams: dict[str, Upstream] = {}
        self._token = secrets.token_hex(6)
        self._count = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._peers: Path | None = None
        self._peer_server: asyncio.Server | None = None
        self.ready = False

    def _judge_of(self, judge: JudgeConfig) -> LLMJudge:
        model = self.config.models[judge.model]
        backend = OpenAICompatible(
            model.base_url, self.api_keys[judge.model], timeout=judge.timeout, api_key_env=None
        )
        self._judge_backends.append(backend)
        rubric = judge.rubric or DEFAULT_RUBRIC
        return LLMJudge(backend, self.config.model_id(judge.model), rubric, scale=judge.scale)

    # ==================== Life cycle ====================

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, auto_decompress=True)
        self.upstreams = {
            name: Upstream(name, m, self.api_keys[name], self._session)
            for name, m in self.config.models.items()
        }
        self._sweeper = asyncio.create_task(self._sweep())
        peers = os.environ.get(PEERS_ENV)
        if peers:
            self._peers = Path(peers)
            self._peer_server = await asyncio.start_unix_server(
                self._peer_feedback, path=str(self._peers / f"{self._token}.sock")
            )
        self.ready = True
        alone = [name for name, r in self.routers.items() if not r.shared]
        if alone and os.environ.get("PICKLLM_GATEWAY_WORKERS", "1") != "1":
            logger.warning(
                "pickllm serve: routers %s have no shared state: each worker learns alone",
                alone,
            )

    async def stop(self) -> None:
        self.ready = False
        if self._peer_server is not None:
            self._peer_server.close()
            await self._peer_server.wait_closed()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for task in list(self._judging):
            task.cancel()
        self.store.settle_all()
        if self._session is not None:
            await self._session.close()
        for backend in self._judge_backends:
            await backend.aclose()
        for routed in self.routers.values():
            await routed.router.aclose()  # flushes and closes a decision log

    async def _sweep(self) -> None:
        """Settle expired decisions when due; refresh the state gauges about once a second.
        Supervised: an error (a shared budget's Redis out of reach, say) is logged and the
        sweep goes on, or decisions without feedback would never expire again."""
        while True:
            try:
                self._expire()
                self.refresh_gauges()
            except Exception:
                logger.exception("pickllm gateway: the sweeper failed; going on")
            due = self.store.next_deadline()
            delay = 1.0 if due is None else min(1.0, max(0.005, due - time.monotonic()))
            await asyncio.sleep(delay)

    def _expire(self) -> None:
        """Settle due decisions: by their router's judge when it has one, else by default."""
        for gid, pending in self.store.due():
            judge = self.judges.get(pending.router)
            if judge is None or pending.answer is None:
                self.store.expire_with(gid, pending.default_accuracy)
                continue
            task = asyncio.create_task(self._judged(gid, pending, judge))
            self._judging.add(task)
            task.add_done_callback(self._judging.discard)

    async def _judged(self, gid: str, pending: Pending, judge: LLMJudge) -> None:
        accuracy = pending.default_accuracy
        try:
            accuracy = await judge.ascore(pending.prompt or "", pending.answer or "")
        except PickLLMError as error:  # the judge failed: the default applies
            logger.warning("pickllm gateway: the judge failed on %s: %s", gid, error)
        self.store.expire_with(gid, accuracy)

    def refresh_gauges(self) -> None:
        m = self.metrics
        for name, routed in self.routers.items():
            for model in routed.router.models:
                m.breaker.labels(name, model).set(BREAKER_VALUES[routed.health.state(model)])
            if routed.spending is not None:
                with contextlib.suppress(PickLLMError):  # a shared budget's Redis away: stale
                    m.spent.labels(name).set(float(routed.spending.spent()))
            m.pending.labels(name).set(self.store.count(name))
            if routed.router._shared is not None:
                self.shared_gauges.refresh(name, routed.router.shared_status())

    # ==================== Requests ====================

    def authorize(self, request: Request) -> None:
        if not self.keys:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() == "bearer" and given:
            offered = given.strip().encode()
            # Compare with every key, always, so timing says nothing about which matched.
            matched = False
            for key in self.keys:
                matched |= hmac.compare_digest(offered, key)
            if matched:
                return
        raise APIError(
            "missing or invalid API key (send Authorization: Bearer <key>)",
            status=401,
            code="invalid_api_key",
        )

    async def chat(self, request: Request) -> Response:
        self.authorize(request)
        raw, body = await self._json_body(request)
        model, messages, stream = _chat_fields(body)
        context = _context(request, body)
        prompt_chars = _prompt_chars(messages)
        if model in self.routers:
            return await self._routed(
                self.routers[model], body, stream, context, len(raw), len(messages), prompt_chars
            )
        if model in self.upstreams:
            return await self._passed_through(self.upstreams[model], body, stream, prompt_chars)
        raise APIError(
            f"the model {model!r} does not exist: use a router or a model of GET /v1/models",
            status=404,
            code="model_not_found",
            param="model",
        )

    async def _routed(
        self,
        routed: RoutedModels,
        body: dict[str, Any],
        stream: bool,
        context: str | None,
        prompt_bytes: int,
        messages: int,
        prompt_chars: int,
    ) -> Response:
        tried: list[Attempt] = []
        deadline = routed.deadline()
        while True:
            ticket = routed.next(context, (prompt_bytes, messages), tried, deadline)
            decision = ticket.decision
            gid = self._decision_id()
            self.store.open(gid, routed.name, decision)
            try:
                if routed.name in self.judges:
                    self._keep_prompt(gid, body)
                self.metrics.decisions.labels(
                    routed.name, self.metrics.context(decision.context), decision.model
                ).inc()
                upstream, limits = self.upstreams[decision.model], routed.limits(deadline)
                if stream:
                    opened = await upstream.stream(
                        body, prompt_chars, keep_text=routed.name in self.judges, limits=limits
                    )
                else:
                    answer = await upstream.complete(body, prompt_chars, limits)
            except UpstreamError as error:
                self.metrics.failures.labels(decision.model, error.kind).inc()
                self._failed(routed, gid, ticket, error)
                if not error.blames_model:  # the request's own fault: passed back as is
                    return _upstream_refusal(error)
                tried.append(Attempt(decision, str(error)))
                continue
            except BaseException:
                self._abandon(routed, gid, ticket)
                raise
            headers = _decision_headers(gid, decision)
            if stream:
                ended = functools.partial(self._stream_ended, routed, gid, ticket, opened)
                return _StreamResponse(opened, headers, ended)
            self._answered(routed, gid, ticket, answer, self._cost(decision.model, answer))
            return _json_response(answer.body, headers)

    async def _passed_through(
        self, upstream: Upstream, body: dict[str, Any], stream: bool, prompt_chars: int
    ) -> Response:
        headers = {"x-pickllm-model": upstream.name}
        # No router, so Router's defaults: the same guarantees as a routed request.
        limits = Limits(
            asyncio.get_running_loop().time() + DEFAULT_DEADLINE,
            f"request deadline of {DEFAULT_DEADLINE:g} s",
            DEFAULT_MAX_RESPONSE_BYTES,
        )
        try:
            if stream:
                opened = await upstream.stream(body, prompt_chars, limits=limits)
            else:
                answer = await upstream.complete(body, prompt_chars, limits)
        except UpstreamError as error:
            self.metrics.failures.labels(upstream.name, error.kind).inc()
            if not error.blames_model:
                return _upstream_refusal(error)
            if error.kind == "deadline":
                raise APIError(
                    str(error), status=504, type="server_error", code="deadline_exceeded"
                ) from None
            raise APIError(
                str(error), status=502, type="server_error", code="upstream_failed"
            ) from None
        if stream:

            def ended(outcome: str, error: UpstreamError | None) -> None:
                if outcome == "done":
                    self._measured(upstream.name, opened.latency, opened.ttft)
                elif error is not None:
                    self.metrics.failures.labels(upstream.name, error.kind).inc()

            return _StreamResponse(opened, headers, ended)
        self._measured(upstream.name, answer.latency, None)
        return _json_response(answer.body, headers)

    # ==================== Settling decisions ====================

    def _keep_prompt(self, gid: str, body: dict[str, Any]) -> None:
        """What the judge grades against: the last user message."""
        pending = self.store.get(gid)
        users = [m for m in body["messages"] if m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        if pending is not None:
            pending.prompt = content if isinstance(content, str) else json.dumps(content)

    def _decision_id(self) -> str:
        self._count += 1
        return f"dec-{self._token}-{self._count}"

    def _cost(self, model: str, answer: Answer | Stream) -> float:
        usage = answer.usage if isinstance(answer, Answer) else answer.final_usage()
        spec = self.config.models[model]
        return (
            usage.input_tokens * spec.input_price + usage.output_tokens * spec.output_price
        ) / 1_000_000

    def _measured(self, model: str, latency: float, ttft: float | None) -> None:
        self.metrics.latency.labels(model).observe(latency)
        if ttft is not None:
            self.metrics.ttft.labels(model).observe(ttft)

    def _answered(
        self, routed: RoutedModels, gid: str, ticket: Ticket, answer: Answer | Stream, cost: float
    ) -> None:
        routed.attempts.answered(ticket, cost)
        ttft = answer.ttft if isinstance(answer, Stream) else None
        self._measured(ticket.decision.model, answer.latency, ttft)
        pending = self.store.get(gid)
        if pending is not None and pending.prompt is not None:
            pending.answer = answer.text()  # for the judge
        self.store.answered(
            gid,
            cost=cost,
            latency=answer.latency,
            timeout=routed.config.feedback_timeout,
            default_accuracy=routed.config.default_accuracy,
        )

    def _failed(
        self,
        routed: RoutedModels,
        gid: str,
        ticket: Ticket,
        error: UpstreamError,
        cost: float = 0.0,
    ) -> None:
        """A call failed: the model's failure is fed back as zero accuracy with its real
        latency; the request's own fault (a 4xx) judges no model."""
        self.store.cancel(gid)
        if not error.blames_model:
            routed.attempts.abandon(ticket, cost)
            return
        failed = routed.attempts.failed
        self._learn(
            routed.name,
            ticket.decision,
            lambda: failed(ticket, error, error.latency, retry_after=error.retry_after, cost=cost),
        )

    def _abandon(self, routed: RoutedModels, gid: str, ticket: Ticket, cost: float = 0.0) -> None:
        """Ended without a verdict on the model (the client left, a bug): no learning."""
        self.store.cancel(gid)
        routed.attempts.abandon(ticket, cost)

    def _stream_ended(
        self,
        routed: RoutedModels,
        gid: str,
        ticket: Ticket,
        stream: Stream,
        outcome: str,
        error: UpstreamError | None,
    ) -> None:
        cost = self._cost(ticket.decision.model, stream)
        if outcome == "done":
            self._answered(routed, gid, ticket, stream, cost)
        elif outcome == "broken" and error is not None:
            self.metrics.failures.labels(ticket.decision.model, error.kind).inc()
            self._failed(routed, gid, ticket, error, cost)
        else:  # the client left: cancel upstream (done by the response), settle once
            self._abandon(routed, gid, ticket, cost)

    def _settled(self, pending: Pending, accuracy: float | None, outcome: Outcome) -> None:
        """The feedback store settled a decision: apply its reward (unless cancelled)."""
        self.metrics.settled.labels(pending.router, outcome).inc()
        if accuracy is None:
            return
        router, decision = self.routers[pending.router].router, pending.decision
        cost, latency = pending.cost or 0.0, pending.latency or 0.0
        self._learn(
            pending.router,
            decision,
            lambda: router.feedback(decision, accuracy=accuracy, cost=cost, latency=latency),
        )

    def _learn(self, router: str, decision: Decision, feedback: Callable[[], float | None]) -> None:
        """Apply ``feedback`` to the learner and record its reward."""
        try:
            reward = feedback()
        except DecisionError as error:  # expired in the learner (max_pending newer decisions)
            logger.warning("pickllm gateway: feedback not applied: %s", error)
            return
        if reward is None:
            return
        self.metrics.rewards.labels(
            router, self.metrics.context(decision.context), decision.model
        ).observe(reward)

    # ==================== Other endpoints ====================

    async def feedback(self, request: Request) -> Response:
        self.authorize(request)
        _, body = await self._json_body(request)
        gid = body.get("decision")
        accuracy = body.get("accuracy")
        if not isinstance(gid, str) or not gid:
            raise APIError(
                "'decision' must be the x-pickllm-decision id of a response", param="decision"
            )
        if (
            isinstance(accuracy, bool)
            or not isinstance(accuracy, int | float)
            or not 0.0 <= accuracy <= 1.0
        ):
            raise APIError(
                f"'accuracy' must be a number in [0, 1], got {accuracy!r}", param="accuracy"
            )
        owner = gid.split("-")[1] if gid.count("-") == 2 else self._token
        if owner != self._token and self._peers is not None:
            status, answer = await self._forward_feedback(owner, gid, float(accuracy))
            return JSONResponse(answer, status_code=status)
        self.store.feedback(gid, float(accuracy))
        return JSONResponse({"decision": gid, "accepted": True})

    async def _forward_feedback(
        self, owner: str, gid: str, accuracy: float
    ) -> tuple[int, dict[str, Any]]:
        """Hand feedback to the worker that made the decision (same machine, Unix socket)."""
        assert self._peers is not None
        try:
            reader, writer = await asyncio.open_unix_connection(self._peers / f"{owner}.sock")
        except OSError:  # no such worker (any more): its decisions are gone with it
            error = UnknownDecisionError(f"unknown decision {gid!r}")
            return error.status, error.body()
        try:
            writer.write(json.dumps({"decision": gid, "accuracy": accuracy}).encode() + b"\n")
            await writer.drain()
            reply = json.loads(await reader.readline())
        finally:
            writer.close()
        return int(reply["status"]), dict(reply["body"])

    async def _peer_feedback(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            request = json.loads(await reader.readline())
            try:
                self.store.feedback(str(request["decision"]), float(request["accuracy"]))
                reply = {"status": 200, "body": {"decision": request["decision"], "accepted": True}}
            except APIError as error:
                reply = {"status": error.status, "body": error.body()}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    async def models(self, request: Request) -> Response:
        self.authorize(request)
        data = [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "pickllm",
                "pickllm": {"kind": "router", "models": list(r.router.models)},
            }
            for name, r in self.routers.items()
        ] + [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "pickllm",
                "pickllm": {"kind": "model", "model_id": self.config.model_id(name)},
            }
            for name in self.config.models
        ]
        return JSONResponse({"object": "list", "data": data})

    async def metrics_endpoint(self, request: Request) -> Response:
        if not self.metrics.multiprocess:
            self.refresh_gauges()
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def _json_body(self, request: Request) -> tuple[bytes, dict[str, Any]]:
        limit = self.config.server.max_body_bytes
        too_big = APIError(
            f"the request body exceeds {limit} bytes", status=413, code="request_too_large"
        )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_big
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_big
            chunks.append(chunk)
        raw = b"".join(chunks)
        try:
            body = json.loads(raw)
        except ValueError:
            raise APIError("the request body is not valid JSON", code="invalid_json") from None
        if not isinstance(body, dict):
            raise APIError("the request body must be a JSON object", code="invalid_json")
        return raw, body


class _StreamResponse(Response):
    """Streams an upstream's events to the client while watching for the client leaving.

    ``ended`` is called exactly once, with "done", "broken" or "left", and before the client
    sees the end of the stream (``[DONE]`` is held back until then), so that whatever the
    client does next (feedback, a metrics scrape) finds the decision settled. On disconnect the
    stream is cancelled and the upstream connection closed, which cancels the upstream call."""

    def __init__(self, stream: Stream, headers: dict[str, str], ended: Any) -> None:
        # Not Response.__init__: it would declare a Content-Length of 0.
        self.status_code = 200
        self.background = None
        self.raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self.raw_headers.append((b"content-type", b"text/event-stream"))
        self.raw_headers.append((b"cache-control", b"no-cache"))
        self.stream = stream
        self.ended = ended
        self.settled = False

    def _settle(self, outcome: str, failure: UpstreamError | None) -> None:
        if not self.settled:
            self.settled = True
            self.ended(outcome, failure)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            async with anyio.create_task_group() as group:
                group.start_soon(_watch_disconnect, receive, group.cancel_scope)
                tail = b""
                try:
                    async for chunk in self.stream.events():
                        if chunk == DONE:
                            tail = chunk
                            continue
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    self.stream.release()
                    self._settle("done", None)
                except UpstreamError as error:
                    self._settle("broken", error)
                    event = {
                        "error": {
                            "message": str(error),
                            "type": "server_error",
                            "code": _STREAM_ERROR_CODES.get(error.kind, "upstream_stream_broken"),
                        }
                    }
                    tail = b"data: " + json.dumps(event).encode() + b"\n\n"
                await send({"type": "http.response.body", "body": tail, "more_body": False})
                group.cancel_scope.cancel()
        except OSError:
            pass  # the client left
        finally:
            self.stream.close()
            self._settle("left", None)


#: The code of the error event that ends a stream cut short, by UpstreamError kind.
_STREAM_ERROR_CODES = {"deadline": "deadline_exceeded", "too_large": "response_too_large"}


async def _watch_disconnect(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


def _chat_fields(body: dict[str, Any]) -> tuple[str, list[dict[str, Any]], bool]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise APIError("'model' must name a router or a model (a non-empty string)", param="model")
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages)
    ):
        raise APIError(
            "'messages' must be a non-empty list of messages with a 'role'", param="messages"
        )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise APIError(f"'stream' must be true or false, got {stream!r}", param="stream")
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise APIError("'stream_options' must be an object", param="stream_options")
    return model, messages, stream


def _context(request: Request, body: dict[str, Any]) -> str | None:
    context = request.headers.get(CONTEXT_HEADER)
    field = body.pop(CONTEXT_FIELD, None)  # pickllm's own field: never forwarded upstream
    if context is None and field is not None:
        if not isinstance(field, str):
            raise APIError(f"'{CONTEXT_FIELD}' must be a string", param=CONTEXT_FIELD)
        context = field
    if context is not None and not 0 < len(context) <= _MAX_CONTEXT:
        raise APIError(f"the context must have 1 to {_MAX_CONTEXT} characters", param=CONTEXT_FIELD)
    return context


def _prompt_chars(messages: list[dict[str, Any]]) -> int:
    total = 0
    for message in messages:
        content = message.get("content")
        total += len(content) if isinstance(content, str) else len(json.dumps(content))
    return total


def _decision_headers(gid: str, decision: Decision) -> dict[str, str]:
    return {
        "x-pickllm-decision": gid,
        "x-pickllm-model": decision.model,
        "x-pickllm-probability": repr(decision.probability),
        "x-pickllm-context": decision.context,
    }


def _json_response(body: dict[str, Any], headers: dict[str, str]) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), headers=headers, media_type="application/json"
    )


def _upstream_refusal(error: UpstreamError) -> Response:
    """A 4xx of the upstream for the request itself, passed back as is (OpenAI-style)."""
    try:
        body = json.loads(error.body or b"")
        if not isinstance(body, dict) or "error" not in body:
            raise ValueError
    except ValueError:
        body = APIError(f"the upstream refused the request: {error}").body()
    return JSONResponse(body, status_code=error.status or 400)


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, APIError)
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = "not_found" if error.status_code == 404 else None
    body = APIError(str(error.detail), status=error.status_code, code=code).body()
    return JSONResponse(body, status_code=error.status_code)


async def _unexpected(request: Request, error: Exception) -> Response:
    logger.error("pickllm gateway: unexpected %s", type(error).__name__, exc_info=error)
    body = APIError("internal error of the gateway", status=500, type="server_error").body()
    return JSONResponse(body, status_code=500)


def create_app(config: GatewayConfig) -> Starlette:
    """The ASGI app serving ``config`` (uvicorn runs it; tests can too)."""
    gateway = Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ready = gateway.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
            Route("/v1/feedback", gateway.feedback, methods=["POST"]),
            Route("/v1/models", gateway.models, methods=["GET"]),
            Route("/metrics", gateway.metrics_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app


def app_from_environment() -> Starlette:
    """The app of the config file named by ``PICKLLM_GATEWAY_CONFIG`` (uvicorn's factory for
    ``--workers N``)."""
    return create_app(load_config(os.environ[CONFIG_ENV]))
