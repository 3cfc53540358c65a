"""The gateway's ASGI app: OpenAI-compatible endpoints in front of configured upstreams.

``model`` in a request names a router (the learner picks the upstream) or a configured model
(passed through, still measured). Responses carry what happened in ``x-pickllm-*`` headers;
``POST /v1/feedback`` completes a decision's reward later (see :mod:`pickllm.gateway.feedback`).

Each trust boundary lives in its own module: who is calling (:mod:`~pickllm.gateway.auth`),
what a request may ask (:mod:`~pickllm.gateway.validation`), what an upstream's words may show
(:mod:`~pickllm.gateway.redact`), who may settle a decision (:mod:`~pickllm.gateway.feedback`,
:mod:`~pickllm.gateway.peers`) and how long a client may take to read
(:mod:`~pickllm.gateway.streaming`). This module wires them to the routers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pickllm._core import Decision
from pickllm.attempts import Attempt, Ticket
from pickllm.backends.openai import OpenAICompatible
from pickllm.errors import DecisionError, PickLLMError
from pickllm.gateway.auth import ADMIN, Keys
from pickllm.gateway.config import GatewayConfig, JudgeConfig, load_config, resolve_secret
from pickllm.gateway.dashboard import dashboard_routes
from pickllm.gateway.decisions import DecisionRecords
from pickllm.gateway.errors import APIError
from pickllm.gateway.feedback import DECISION_ID, FeedbackStore, Outcome, Pending, new_decision_id
from pickllm.gateway.metrics import (
    BREAKER_VALUES,
    CONTENT_TYPE_LATEST,
    PROMPT_CONTEXTS_VALUES,
    Metrics,
)
from pickllm.gateway.peers import Peers
from pickllm.gateway.proxy import Answer, Limits, Stream, Upstream, UpstreamError
from pickllm.gateway.readiness import Readiness
from pickllm.gateway.redact import Redactor
from pickllm.gateway.routes import CallSize, RoutedModels
from pickllm.gateway.shared_metrics import SharedStateGauges
from pickllm.gateway.stats import GatewayStats
from pickllm.gateway.streaming import StreamResponse
from pickllm.gateway.traces import GatewayTraces
from pickllm.gateway.validation import CONTEXT_HEADER, ChatRequest, chat_request, read_json
from pickllm.routing import DEFAULT_DEADLINE, DEFAULT_MAX_RESPONSE_BYTES
from pickllm.scorers.judge import DEFAULT_RUBRIC, LLMJudge
from pickllm.state import SharedStatus

__all__ = ["CONFIG_ENV", "Gateway", "app_from_environment", "create_app"]

logger = logging.getLogger("pickllm.gateway")

#: Where ``pickllm serve`` tells its workers the config file is.
CONFIG_ENV = "PICKLLM_GATEWAY_CONFIG"
#: With several workers: the folder where each worker listens (a Unix socket named by its
#: token) for feedback on its decisions that reached another worker.
PEERS_ENV = "PICKLLM_GATEWAY_PEERS"


class Gateway:
    """Everything one worker holds: routers, upstreams, pending feedback and metrics."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self.keys = Keys(config.server)
        self.api_keys = {
            name: None if m.api_key is None else resolve_secret(m.api_key, f"models.{name}.api_key")
            for name, m in config.models.items()
        }
        self.redact = Redactor(
            [*self.keys.secrets(), *(k for k in self.api_keys.values() if k is not None)]
        )
        self.routers = {name: RoutedModels(name, r, config) for name, r in config.routers.items()}
        self._judge_backends: list[OpenAICompatible] = []
        self.judges = {
            name: self._judge_of(r.judge) for name, r in config.routers.items() if r.judge
        }
        self._judging: set[asyncio.Task[None]] = set()
        self.metrics = Metrics(config.server.metrics_contexts)
        self.shared_gauges = SharedStateGauges(self.metrics.registry)
        self.stats = GatewayStats(
            {n: r.router.models for n, r in self.routers.items()},
            changes={n: _changes(r) for n, r in self.routers.items()},
        )
        self.traces = GatewayTraces()
        self.decisions = DecisionRecords()
        self.store = FeedbackStore(self._settled)
        self.upstreams: dict[str, Upstream] = {}
        #: This worker's token: in its decision ids, and its address for hand-offs.
        self.token = secrets.token_hex(6)
        self._sweeper: asyncio.Task[None] | None = None
        self._sessions = contextlib.AsyncExitStack()  # shared budgets' Redis connections
        self._session: aiohttp.ClientSession | None = None
        self.peers: Peers | None = None
        self.ready = False  # started and not stopping
        self.readiness = Readiness(config.server.ready_grace)

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
        for routed in self.routers.values():
            await self._sessions.enter_async_context(routed.attempts.session())
        self._sweeper = asyncio.create_task(self._sweep())
        folder = os.environ.get(PEERS_ENV)
        if folder:
            self.peers = Peers(Path(folder), self.token, self._settle_feedback, self._answer)
            await self.peers.start()
        self.ready = True
        alone = [name for name, r in self.routers.items() if not r.shared]
        if alone and os.environ.get("PICKLLM_GATEWAY_WORKERS", "1") != "1":
            logger.warning(
                "pickllm serve: routers %s have no shared state: each worker learns alone",
                alone,
            )

    async def stop(self) -> None:
        self.ready = False
        if self.peers is not None:
            await self.peers.stop()
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
        await self._sessions.aclose()

    async def _sweep(self) -> None:
        """Settle expired decisions when due; refresh the state gauges about once a second.
        Supervised: an error (a shared budget's Redis out of reach, say) is logged and the
        sweep goes on, or decisions without feedback would never expire again."""
        while True:
            try:
                self._expire()
                await self.refresh_gauges()
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

    async def refresh_gauges(self) -> None:
        m = self.metrics
        for name, routed in self.routers.items():
            for model in routed.router.models:
                m.breaker.labels(name, model).set(BREAKER_VALUES[routed.health.state(model)])
            await routed.refresh_spent()
            spent = routed.spent()
            if spent is not None:  # None: a shared budget not read yet (Redis away)
                m.spent.labels(name).set(spent)
            m.pending.labels(name).set(self.store.count(name))
            if routed.router._shared is not None:
                status = routed.router.shared_status()
                self.shared_gauges.refresh(name, status)
                self._observe(name, routed, status)
            if routed.router.decision_log is not None:
                m.decision_log_dropped(name, routed.router.decision_log.dropped)
            mapper = routed.router._mapper
            if mapper is not None:
                state = PROMPT_CONTEXTS_VALUES[mapper.state]
                m.prompt_contexts.labels(name).set(state)

    def unready(self) -> dict[str, str]:
        """Why routers with shared state should get no traffic now, by router (see
        :mod:`~pickllm.gateway.readiness`): judged afresh, without waiting on Redis."""
        reasons = {}
        for name, routed in self.routers.items():
            if routed.router._shared is not None:
                reason = self._observe(name, routed, routed.router.shared_status())
                if reason is not None:
                    reasons[name] = reason
        return reasons

    def _observe(self, name: str, routed: RoutedModels, status: SharedStatus) -> str | None:
        assert routed.router._shared is not None
        buffer = routed.router._shared.config.buffer
        return self.readiness.observe(name, status, fails_closed=routed.fails_closed, buffer=buffer)

    # ==================== Requests ====================

    def authorize(self, request: Request) -> str:
        """The caller's principal (see :mod:`pickllm.gateway.auth`), or a 401."""
        return self.keys.principal(request)

    async def _body(self, request: Request) -> tuple[bytes, dict[str, Any]]:
        server = self.config.server
        return await read_json(request, server.max_body_bytes, server.body_timeout)

    async def chat(self, request: Request) -> Response:
        principal = self.authorize(request)
        raw, body = await self._body(request)
        checked = chat_request(raw, body, request.headers.get(CONTEXT_HEADER))
        most = self.config.server.max_choices
        if checked.choices > most:
            raise APIError(f"'n' (and 'best_of') may be at most {most} on this gateway", param="n")
        if checked.model in self.routers:
            with self.traces.request(checked.context, checked.model):
                return await self._routed(self.routers[checked.model], checked, principal)
        if checked.model in self.upstreams:
            return await self._passed_through(self.upstreams[checked.model], checked)
        raise APIError(
            f"the model {checked.model!r} does not exist: use a router or a model of "
            "GET /v1/models",
            status=404,
            code="model_not_found",
            param="model",
        )

    async def _routed(self, routed: RoutedModels, checked: ChatRequest, principal: str) -> Response:
        with routed.prompt_scope(checked.body["messages"], checked.context) as context:
            return await self._attempts(routed, checked, context, principal)

    async def _attempts(
        self, routed: RoutedModels, checked: ChatRequest, context: str | None, principal: str
    ) -> Response:
        """Call the router's choices in turn until one answers (fallbacks before its first
        byte); ``context`` is what they are selected in."""
        tried: list[Attempt] = []
        deadline = routed.deadline()
        size = CallSize(checked.prompt_bytes, checked.messages, checked.choices, checked.max_tokens)
        body, stream = checked.body, checked.stream
        judged = routed.name in self.judges
        previous: str | None = None
        while True:
            ticket = await routed.next(context, size, tried, deadline)
            decision = ticket.decision
            gid = new_decision_id(self.token)
            self.store.open(gid, routed.name, decision, owner=principal)
            # The context's distribution as the first model was drawn (for the explorer and
            # the probability history); a fallback's draw is from the models left.
            probabilities = None if previous else routed.router.probabilities(decision.context)
            self.decisions.attempt(
                gid,
                routed.name,
                decision.context,
                decision.model,
                decision.probability,
                owner=principal,
                probabilities=probabilities,
                previous=previous,
            )
            previous = gid
            self.traces.attempt(gid, decision, len(tried) + 1, self.config.model_id(decision.model))
            try:
                if judged:
                    self._keep_prompt(gid, routed, body)
                self.metrics.decisions.labels(
                    routed.name, self.metrics.context(decision.context), decision.model
                ).inc()
                self.stats.decided(routed.name, decision, probabilities)
                upstream, limits = self.upstreams[decision.model], routed.limits(deadline)
                if stream:
                    opened = await upstream.stream(
                        body, checked.prompt_chars, keep_text=judged, limits=limits
                    )
                else:
                    answer = await upstream.complete(body, checked.prompt_chars, limits)
            except UpstreamError as error:
                self._count_failure(decision.model, error)
                self._failed(routed, gid, ticket, error)
                if not error.blames_model:
                    raise self._not_the_models(error) from None
                tried.append(Attempt(decision, str(error)))
                continue
            except BaseException:
                self._abandon(routed, gid, ticket)
                raise
            headers = _decision_headers(gid, decision)
            if stream:
                ended = functools.partial(self._stream_ended, routed, gid, ticket, opened)
                return StreamResponse(opened, headers, ended)
            try:
                self._answered(routed, gid, ticket, answer, self._cost(decision.model, answer))
            except BaseException:  # settled exactly once, whatever raises
                self._abandon(routed, gid, ticket)
                raise
            await routed.attempts.flush()  # a shared budget's settlements, before the answer
            return _json_response(answer.body, headers)

    def _count_failure(self, model: str, error: UpstreamError) -> None:
        """A failed call in the metrics: by model, unless our own machine failed it."""
        if error.kind == "local":
            self.metrics.overloaded.inc()
        else:
            self.metrics.failures.labels(model, error.kind).inc()

    def _not_the_models(self, error: UpstreamError) -> APIError:
        """The client's error for a failure that blames no model: the request's own fault (the
        upstream's refusal, redacted) or our own machine's (a 503 to retry later)."""
        if error.kind == "local":
            logger.error("pickllm gateway: %s", error)
            return APIError(
                "the gateway is overloaded (out of local resources); retry later",
                status=503,
                type="server_error",
                code="gateway_overloaded",
                headers={"Retry-After": "1"},
            )
        return self.redact.refusal(error.status or 400, error.body)

    async def _passed_through(self, upstream: Upstream, checked: ChatRequest) -> Response:
        headers = {"x-pickllm-model": upstream.name}
        # No router, so Router's defaults: the same guarantees as a routed request.
        limits = Limits(
            asyncio.get_running_loop().time() + DEFAULT_DEADLINE,
            f"request deadline of {DEFAULT_DEADLINE:g} s",
            DEFAULT_MAX_RESPONSE_BYTES,
        )
        body, chars = checked.body, checked.prompt_chars
        try:
            if checked.stream:
                opened = await upstream.stream(body, chars, limits=limits)
            else:
                answer = await upstream.complete(body, chars, limits)
        except UpstreamError as error:
            self._count_failure(upstream.name, error)
            if not error.blames_model:
                raise self._not_the_models(error) from None
            if error.kind == "deadline":
                raise APIError(
                    str(error), status=504, type="server_error", code="deadline_exceeded"
                ) from None
            raise APIError(
                str(error), status=502, type="server_error", code="upstream_failed"
            ) from None
        if checked.stream:

            def ended(outcome: str, error: UpstreamError | None) -> None:
                if outcome == "done":
                    self._measured(upstream.name, opened.latency, opened.ttft)
                elif error is not None:
                    self.metrics.failures.labels(upstream.name, error.kind).inc()

            return StreamResponse(opened, headers, ended)
        self._measured(upstream.name, answer.latency, None)
        return _json_response(answer.body, headers)

    # ==================== Settling decisions ====================

    def _keep_prompt(self, gid: str, routed: RoutedModels, body: dict[str, Any]) -> None:
        """What the judge grades against: the last user message (unless larger than the
        judge's max_kept_bytes: then the decision gets its default accuracy)."""
        pending = self.store.get(gid)
        users = [m for m in body["messages"] if m.get("role") == "user"]
        content = users[-1].get("content") if users else None
        prompt = content if isinstance(content, str) else json.dumps(content)
        if pending is not None and _size(prompt) <= _kept_bytes(routed):
            pending.prompt = prompt

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
        self.decisions.answered(gid, latency=answer.latency, cost=cost)
        usage = answer.usage if isinstance(answer, Answer) else answer.final_usage()
        self.traces.answered(
            gid, usage.input_tokens, usage.output_tokens, ticket.decision.model, cost
        )
        ttft = answer.ttft if isinstance(answer, Stream) else None
        self._measured(ticket.decision.model, answer.latency, ttft)
        pending = self.store.get(gid)
        if pending is not None and pending.prompt is not None:
            text = answer.text()  # for the judge, if question and answer fit what it may keep
            if text is not None and _size(pending.prompt) + _size(text) <= _kept_bytes(routed):
                pending.answer = text
            else:
                pending.prompt = None
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
        self.decisions.failed(
            gid, error.kind, latency=error.latency, blames_model=error.blames_model, cost=cost
        )
        self.store.cancel(gid)
        self.traces.failed(gid, error)
        if not error.blames_model:
            routed.attempts.abandon(ticket, cost)
            return
        failed = routed.attempts.failed
        self._learn(
            gid,
            routed.name,
            ticket.decision,
            lambda: failed(ticket, error, error.latency, retry_after=error.retry_after, cost=cost),
        )

    def _abandon(self, routed: RoutedModels, gid: str, ticket: Ticket, cost: float = 0.0) -> None:
        """Ended without a verdict on the model (the client left, a bug): no learning."""
        self.decisions.abandoned(gid, cost)
        self.store.cancel(gid)
        self.traces.failed(gid, None)
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
        self.decisions.settled(pending.gid, outcome, accuracy)
        if accuracy is None:
            return
        router, decision = self.routers[pending.router].router, pending.decision
        cost, latency = pending.cost or 0.0, pending.latency or 0.0
        self.stats.settled(pending.router, decision, accuracy, cost, latency)
        self._learn(
            pending.gid,
            pending.router,
            decision,
            lambda: router.feedback(decision, accuracy=accuracy, cost=cost, latency=latency),
        )

    def _learn(
        self, gid: str, router: str, decision: Decision, feedback: Callable[[], float | None]
    ) -> None:
        """Apply ``feedback`` to the learner (for the gateway's decision ``gid``) and record
        its reward."""
        try:
            reward = feedback()
        except DecisionError as error:  # expired in the learner (max_pending newer decisions)
            logger.warning("pickllm gateway: feedback not applied: %s", error)
            return
        self.stats.changed(router, decision, _changes(self.routers[router]))
        if reward is None:
            return
        self.metrics.rewards.labels(
            router, self.metrics.context(decision.context), decision.model
        ).observe(reward)
        self.stats.learned(router, decision, reward)
        self.decisions.rewarded(gid, reward)

    # ==================== Other endpoints ====================

    async def feedback(self, request: Request) -> Response:
        principal = self.authorize(request)
        _, body = await self._body(request)
        gid = body.get("decision")
        accuracy = body.get("accuracy")
        # The id's shape first: nothing else is done with an id that does not match it.
        match = DECISION_ID.match(gid) if isinstance(gid, str) else None
        if match is None or not isinstance(gid, str):
            raise APIError(
                "'decision' must be the x-pickllm-decision id of a response", param="decision"
            )
        if (
            isinstance(accuracy, bool)
            or not isinstance(accuracy, int | float)
            or not 0.0 <= accuracy <= 1.0
        ):
            raise APIError(
                f"'accuracy' must be a number in [0, 1], got {json.dumps(accuracy)[:40]}",
                param="accuracy",
            )
        owner = match.group(1)
        if owner != self.token and self.peers is not None:
            status, answer = await self.peers.hand_off(owner, gid, float(accuracy), principal)
            return JSONResponse(answer, status_code=status)
        self._settle_feedback(gid, float(accuracy), principal)
        return JSONResponse({"decision": gid, "accepted": True})

    def worker_info(self, answered: list[str], missing: list[str] | None = None) -> dict[str, Any]:
        """Which worker answers, how many there are, and which of the others' data merged in
        (``answered``) or not (``missing``: they did not answer in time)."""
        return {
            "id": self.token,
            "workers": int(os.environ.get("PICKLLM_GATEWAY_WORKERS", "1")),
            "answered": [self.token, *answered],
            "missing": missing or [],
        }

    def _answer(self, question: dict[str, Any]) -> Any:
        """Another worker's question (see pickllm.gateway.peers) about this worker's data."""
        op = question.get("op")
        router = question.get("router")
        if router is not None and router not in self.routers:
            raise ValueError(f"no router {router!r}")
        if op == "stats":
            return self.stats.snapshot(self, router=router, context=question["context"], raw=True)
        principal = str(question["principal"])
        if op == "decision":
            return self.decisions.get(str(question["decision"]), principal)
        if op == "decisions":
            limit = int(question["limit"])
            return self.decisions.recent(
                principal, router=router, context=question["context"], limit=limit
            )
        raise ValueError(f"unknown op {op!r}")

    def _settle_feedback(self, gid: str, accuracy: float, principal: str) -> None:
        """Feedback for a decision of this worker, from ``principal`` (raises APIError)."""
        self.store.feedback(gid, accuracy, by=principal, admin=principal == ADMIN)

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
            await self.refresh_gauges()
        return Response(self.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _changes(routed: RoutedModels) -> int:
    """``router.stats().changes``, read from the core alone: after every feedback, where the
    whole ContextStats (the config parsed again) would cost 10 to 35 us."""
    return routed.router._core.context_counts()[4]


def _size(text: str) -> int:
    return len(text.encode("utf-8", errors="surrogatepass"))


def _kept_bytes(routed: RoutedModels) -> int:
    judge = routed.config.judge
    return 0 if judge is None else judge.max_kept_bytes


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
        reasons = gateway.unready()
        ready = gateway.ready and not reasons
        body: dict[str, Any] = {"ready": ready}
        if reasons:
            body["reasons"] = reasons
        return JSONResponse(body, status_code=200 if ready else 503)

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", gateway.chat, methods=["POST"]),
            Route("/v1/feedback", gateway.feedback, methods=["POST"]),
            Route("/v1/models", gateway.models, methods=["GET"]),
            Route("/metrics", gateway.metrics_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            *dashboard_routes(gateway),
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
