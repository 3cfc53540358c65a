"""Hostile servers on real sockets (127.0.0.1): every case of issue 9 that a server can play.

Each test checks what the router promises (docs/reliability.md, fault matrix): the error is a
precise PickLLMError, the failure is that model's (or, for our own congestion, nobody's), the
query falls back, and every reservation, breaker slot and decision is settled exactly once.
Limits are checked by outcome (the error raised, the bytes read), never by timing. Deadlines
against servers on 127.0.0.1 are at least :data:`MARGIN`: the scripts never end on their own, so
only how the call ends is asserted; the margin leaves the request time to leave our own pool
(sent within milliseconds even on a loaded machine), else the call would end, correctly, as
local congestion instead of the model's deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from hostile_server import (
    HostileServer,
    Script,
    Send,
    answer,
    completion,
    good,
    headers,
    hostile_server,
)
from pickllm import ArgumentTypeError, DecisionError, LearningAutomaton, Router
from pickllm.backends import OpenAICompatible
from pickllm.backends._pools import _shared_ssl_context
from pickllm.backends.base import Completion, Message
from pickllm.backends.errors import (
    DeadlineExceededError,
    InvalidRequestError,
    ResponseTooLargeError,
)
from pickllm.backends.usage import Usage
from pickllm.budget import Budget, BudgetExceeded
from pickllm.health import CircuitBreaker, Health
from pickllm.models import Model
from pickllm.routing import AllModelsFailedError, RouteResult

MODES = ["sync", "async"]
#: Seconds of deadline in calls to the local server (see the module docs).
MARGIN = 1.0


def trickle(send: Send, request: dict[str, Any]) -> None:
    """200 with a body that never ends, one byte every 50 ms (no read timeout ever trips)."""
    send(headers(Transfer_Encoding="chunked"))
    send(b"1\r\n{\r\n")
    while True:
        time.sleep(0.05)
        send(b"1\r\n \r\n")


def endless_json(send: Send, request: dict[str, Any]) -> None:
    """200 with a JSON string that never closes, as fast as the client reads."""
    send(headers(Transfer_Encoding="chunked"))
    send(b'5\r\n{"a":\r\n')
    block = b"x" * 65536
    while True:
        send(b"%x\r\n%s\r\n" % (len(block), block))


def endless_sse(send: Send, request: dict[str, Any]) -> None:
    """An event stream of text deltas that never finishes."""
    send(headers(content_type="text/event-stream", Transfer_Encoding="chunked"))
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "la "}}]}\n\n'
    while True:
        send(b"%x\r\n%s\r\n" % (len(event) * 100, event * 100))


def backend(server: HostileServer, **kwargs: Any) -> OpenAICompatible:
    # Load the CA bundle now (once per process, ~0.1 s), not inside a call's deadline.
    _shared_ssl_context()
    return OpenAICompatible(base_url=server.url, api_key="sk-hostile", **kwargs)


@contextmanager
def routed(scripts: dict[str, Script], **options: Any) -> Iterator[tuple[Router, HostileServer]]:
    """A router over ``scripts`` whose first model is the learner's certain first choice."""
    with hostile_server(scripts) as server, backend(server) as shared:
        names = list(scripts)
        models = [Model(name, backend=shared, max_tokens=50) for name in names]
        prior = {name: (1000.0 if i == 0 else 1.0) for i, name in enumerate(names)}
        router = Router(models, policy=LearningAutomaton(), prior=prior, seed=1, **options)
        yield router, server


def route(router: Router, mode: str, prompt: str = "Which is even?", **kw: Any) -> RouteResult:
    if mode == "sync":
        return router.route(prompt, **kw)

    async def main() -> RouteResult:
        try:
            return await router.aroute(prompt, **kw)
        finally:
            await router.aclose()

    return asyncio.run(main())


# ------------------------------------------------------------------ 1. deadline and size cap


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("stream", [False, True])
def test_a_trickling_server_is_cut_at_the_deadline(mode: str, stream: bool) -> None:
    with routed({"hostile": trickle, "good": good()}, stream=stream, attempt_deadline=MARGIN) as (
        router,
        _,
    ):
        result = route(router, mode)
    assert result.model == "good"
    assert "the call's deadline passed" in (result.attempts[0].error or "")
    assert router.feedback_counts()["hostile"] == 1


def silent_after_headers(send: Send, request: dict[str, Any]) -> None:
    """Headers late (after 0.3 s), then nothing: the sync watchdog ends the body's read before
    its read timeout (cut to the time left when the request started) would."""
    time.sleep(0.3)
    send(headers(Transfer_Encoding="chunked"))
    while True:
        time.sleep(0.05)
        send(b"")


@pytest.mark.parametrize("mode", MODES)
def test_a_server_silent_after_its_headers_is_cut_at_the_deadline(mode: str) -> None:
    with routed({"hostile": silent_after_headers, "good": good()}, attempt_deadline=MARGIN) as (
        router,
        _,
    ):
        result = route(router, mode)
    assert result.model == "good"
    assert "the call's deadline passed" in (result.attempts[0].error or "")


@pytest.mark.parametrize("mode", MODES)
def test_the_route_deadline_bounds_all_attempts(mode: str) -> None:
    with (
        routed({"hostile": trickle, "also": trickle}, deadline=MARGIN) as (router, _),
        pytest.raises(AllModelsFailedError) as caught,
    ):
        route(router, mode)
    # The first attempt used the whole deadline; no second call was started after it.
    assert [a.model for a in caught.value.attempts] == ["hostile"]
    assert "the call's deadline passed" in (caught.value.attempts[0].error or "")
    assert f"route deadline of {MARGIN:g} s passed" in str(caught.value)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("script", [endless_json, endless_sse])
def test_an_endless_body_stops_at_the_size_cap(mode: str, script: Script) -> None:
    stream = script is endless_sse
    cap = 256 * 1024
    with routed({"hostile": script, "good": good()}, max_response_bytes=cap, stream=stream) as (
        router,
        _,
    ):
        result = route(router, mode)
    assert result.model == "good"
    assert f"max_response_bytes={cap}" in (result.attempts[0].error or "")


@pytest.mark.parametrize("mode", MODES)
def test_backend_limits_raise_precise_errors(mode: str) -> None:
    messages: list[Message] = [{"role": "user", "content": "hi"}]
    with hostile_server({"m": endless_json, "t": trickle}) as server, backend(server) as b:

        def call(model: str, **limits: Any) -> Completion:
            if mode == "sync":
                return b.complete(messages, model=model, **limits)

            async def main() -> Completion:
                try:
                    return await b.acomplete(messages, model=model, **limits)
                finally:
                    await b.aclose()

            return asyncio.run(main())

        with pytest.raises(ResponseTooLargeError):
            call("m", max_response_bytes=100_000)
        with pytest.raises(DeadlineExceededError) as caught:
            call("t", deadline=time.monotonic() + MARGIN)
        assert caught.value.blames_model
        with pytest.raises(InvalidRequestError, match="max_response_bytes"):
            call("m", max_response_bytes=0)


# ------------------------------------------------------------------ 3. hostile but cheap


def deep_json(send: Send, request: dict[str, Any]) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    send(headers(Content_Length=str(len(body))) + body)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("script", "message"),
    [
        (deep_json, "nested too deeply"),
        (answer(completion(usage=(10**400, 5))), "usage.prompt_tokens must be at most"),
        (answer(completion(text="bad \ud800")), "lone surrogate"),
        (answer(b'{"choices": [' + b"9" * 5000 + b"]}"), "not valid JSON"),
    ],
    ids=["deep-nesting", "usage-10**400", "lone-surrogate", "5000-digit-int"],
)
def test_hostile_answers_are_that_models_failure(mode: str, script: Script, message: str) -> None:
    with routed({"hostile": script, "good": good()}) as (router, _):
        result = route(router, mode)
    assert result.model == "good"
    assert message in (result.attempts[0].error or "")
    assert router.feedback_counts()["hostile"] == 1
    assert router.health()["hostile"] == "closed"  # one failure: below the breaker's threshold


# ------------------------------------------------------------------ 4. blame only the model


def held(send: Send, request: dict[str, Any]) -> None:
    """Keeps its connection busy until the test ends."""
    send(headers(Transfer_Encoding="chunked"))
    while True:
        time.sleep(0.05)
        send(b"")


def test_local_pool_exhaustion_blames_no_model() -> None:
    limits = httpx.Limits(max_connections=1)
    timeout = httpx.Timeout(30.0, pool=0.2)
    with (
        hostile_server({"hold": held, "a": good(), "b": good()}) as server,
        backend(server, limits=limits, timeout=timeout) as b,
    ):
        started = threading.Event()

        def occupy() -> None:
            messages: list[Message] = [{"role": "user", "content": "x"}]
            started.set()
            with contextlib.suppress(Exception):  # ended by the test's end
                b.complete(messages, model="hold", deadline=time.monotonic() + 60)

        thread = threading.Thread(target=occupy)
        thread.start()
        started.wait()
        while not server.requests:  # the only connection is now taken
            time.sleep(0.01)
        router = Router([Model(n, backend=b) for n in ("a", "b")], seed=3)
        with pytest.raises(AllModelsFailedError) as caught:
            router.route("hi")
        server.stop.set()
        b.close()
        thread.join()
    assert all("local pool" in (a.error or "") for a in caught.value.attempts)
    assert len(caught.value.attempts) == 2
    # Nothing fed back, no breaker opened: congestion on our side says nothing of the models.
    assert router.feedback_counts() == {"a": 0, "b": 0}
    assert router.health() == {"a": "closed", "b": "closed"}
    assert [r["model"] for r in server.requests] == ["hold"]


@pytest.mark.parametrize("retry_after", ["99999999999", "1e300", "Thu, 01 Jan 2099 00:00:00 GMT"])
def test_retry_after_is_capped(retry_after: str) -> None:
    limited = answer(b'{"error": {"message": "slow down"}}', status=429, Retry_After=retry_after)
    with routed({"hostile": limited, "good": good()}, max_retry_after=120.0) as (router, _):
        result = router.route("hi")
        assert result.model == "good"
        assert router.health()["hostile"] == "open"
        held_for = router._route_loop.health._models["hostile"].until - time.monotonic()  # type: ignore[union-attr]
    assert 0 < held_for <= 120.0


def test_health_hold_is_capped_with_a_fake_clock() -> None:
    now = [0.0]
    health = Health(None, ["m"], clock=lambda: now[0], max_hold=300.0)
    health.hold("m", 1e300)
    assert health.state("m") == "open"
    now[0] = 300.0
    assert health.state("m") == "closed"
    health.hold("m", float("nan"))
    assert health.state("m") == "closed"


# ------------------------------------------------------------------ 5. budgets and liars


def test_a_lying_provider_is_charged_and_then_refused() -> None:
    liar = answer(completion(usage=(10**9, 10**9)))
    with routed({"liar": liar}, budget=Budget(per_context=1.0)) as (router, server):
        spec = router._route_loop.specs["liar"]  # type: ignore[union-attr]
        router._route_loop.specs["liar"] = spec.model_copy(  # type: ignore[union-attr]
            update={"input_price": 0.01, "output_price": 0.01}
        )
        result = router.route("hi")
        # max_tokens was sent, so an honest provider could not exceed the bound reserved.
        assert server.requests[0]["max_tokens"] == 50
        assert result.cost == pytest.approx(20.0)
        assert router.spent("default") == pytest.approx(20.0)  # what it reported, charged
        with pytest.raises(BudgetExceeded):
            router.route("hi")
        assert len(server.requests) == 1  # never admitted once nothing fits


# ------------------------------------------------------------------ 2. cleanup on every path


class FakeBackend:
    """Unit-test backend: answers instantly with ``usage``, optionally blocking on an event."""

    def __init__(self, usage: Usage | None = None, gate: asyncio.Event | None = None) -> None:
        self.usage = Usage(12, 5) if usage is None else usage
        self.gate = gate

    def complete(self, messages: Any, *, model: str, **kw: Any) -> Completion:
        return Completion(text="B", model=model, usage=self.usage, latency=0.01)

    async def acomplete(self, messages: Any, *, model: str, **kw: Any) -> Completion:
        if self.gate is not None:
            await self.gate.wait()
        return self.complete(messages, model=model)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def settled(router: Router) -> None:
    """No reservation and no half-open probe slot left behind."""
    loop = router._route_loop
    assert loop is not None
    if loop.spending is not None:
        assert loop.spending._reserved_total == 0
    assert all(m.probes == 0 for m in loop.health._models.values())


def budget_router(backends: dict[str, Any], **options: Any) -> Router:
    models = [
        Model(n, backend=b, max_tokens=10, input_price=1.0, output_price=1.0)
        for n, b in backends.items()
    ]
    prior = {n: (1000.0 if i == 0 else 1.0) for i, n in enumerate(backends)}
    return Router(
        models,
        policy=LearningAutomaton(),
        prior=prior,
        seed=2,
        budget=Budget(total=100.0),
        **options,
    )


@pytest.mark.parametrize("mode", MODES)
def test_pricing_that_overflows_is_that_models_failure(mode: str) -> None:
    router = budget_router({"huge": FakeBackend(Usage(10**400, 1)), "ok": FakeBackend()})
    result = route(router, mode)
    assert result.model == "ok"
    assert "OverflowError" in (result.attempts[0].error or "")
    settled(router)


@pytest.mark.parametrize("mode", MODES)
def test_a_scorer_raising_anything_leaves_the_decision_for_feedback(mode: str) -> None:
    def broken(prompt: str, response: str, reference: str | None) -> float:
        raise RuntimeError("scorer bug")

    router = budget_router({"ok": FakeBackend()}, scorer=broken)
    result = route(router, mode)
    assert result.accuracy is None
    assert result.reward is None
    assert router.spent() == pytest.approx(result.cost)
    settled(router)
    router.feedback(result.decision, accuracy=1.0, cost=result.cost)  # still redeemable once


#: The route deadline of the scorer tests: the call to the local server takes milliseconds of
#: it, then the scorer outlasts it.
SCORER_DEADLINE = 2 * MARGIN


def graded_too_late(router: Router, result: RouteResult, server: HostileServer) -> None:
    """The answer stands (paid for, the model's success, no fallback); only its grade is
    missing, so the decision awaits feedback, and settles exactly once."""
    assert result.model == "ok"
    assert result.text == "The answer is B."
    assert result.accuracy is None
    assert result.reward is None
    assert len(server.requests) == 1
    assert router.health()["ok"] == "closed"
    assert router.feedback_counts()["ok"] == 0
    assert router.pending == 1
    settled(router)
    router.feedback(result.decision, accuracy=1.0, cost=result.cost)
    assert router.pending == 0
    with pytest.raises(DecisionError):
        router.feedback(result.decision, accuracy=1.0, cost=result.cost)


@pytest.mark.parametrize("mode", MODES)
def test_an_async_scorer_is_cancelled_at_the_route_deadline(
    mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled: list[str] = []

    async def stuck(prompt: str, response: str, reference: str | None) -> float:
        try:
            await asyncio.Event().wait()  # never set: only the route's deadline ends it
        except asyncio.CancelledError:
            cancelled.append(response)
            raise
        return 1.0

    with routed({"ok": good()}, scorer=stuck, deadline=SCORER_DEADLINE) as (router, server):
        result = route(router, mode)
        graded_too_late(router, result, server)
    assert cancelled == ["The answer is B."]
    assert "did not grade by the deadline" in caplog.text


def test_a_sync_scorers_grade_after_the_route_deadline_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def slow(prompt: str, response: str, reference: str | None) -> float:
        time.sleep(SCORER_DEADLINE)  # started after the route did, so it ends after its deadline
        return 1.0

    with routed({"ok": good()}, scorer=slow, deadline=SCORER_DEADLINE) as (router, server):
        result = route(router, "sync")
        graded_too_late(router, result, server)
    assert "graded after the deadline: its grade is dropped" in caplog.text


def test_cancelling_aroute_during_the_call_or_the_scorer_settles_everything() -> None:
    async def main() -> None:
        gate = asyncio.Event()
        scoring = asyncio.Event()

        async def slow_scorer(prompt: str, response: str, reference: str | None) -> float:
            scoring.set()
            await asyncio.sleep(3600)
            return 1.0

        # Half-open "ok": its probe slot must come back when the call is cancelled.
        breaker = CircuitBreaker(failures=1, cooldown=0.0)
        stuck = budget_router({"ok": FakeBackend(gate=gate)}, breaker=breaker)
        stuck._route_loop.health.failed("ok")  # type: ignore[union-attr]
        assert stuck.health()["ok"] == "half_open"
        task = asyncio.create_task(stuck.aroute("hi"))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        settled(stuck)
        assert stuck.feedback_counts()["ok"] == 0

        scored = budget_router({"ok": FakeBackend()}, scorer=slow_scorer)
        task = asyncio.create_task(scored.aroute("hi"))
        await scoring.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        settled(scored)
        assert scored.spent() > 0  # the answer was paid for: charged once
        assert scored.health()["ok"] == "closed"

    asyncio.run(main())


# ------------------------------------------------------------------ 6. small cases


@pytest.mark.parametrize("mode", MODES)
def test_bad_reference_and_lone_surrogates_fail_before_any_call(mode: str) -> None:
    with routed({"good": good()}) as (router, server):
        with pytest.raises(ArgumentTypeError, match="reference must be a str"):
            route(router, mode, reference=5)
        with pytest.raises(InvalidRequestError, match="lone surrogate"):
            route(router, mode, prompt="bad \ud800")
        with pytest.raises(InvalidRequestError, match="reference holds a lone surrogate"):
            route(router, mode, reference="bad \udfff")
        assert server.requests == []
        assert router.pending == 0


class NoLimits(FakeBackend):
    """A user-written backend from before the limits existed (no deadline keywords)."""

    def complete(  # type: ignore[override]
        self,
        messages: Any,
        *,
        model: str,
        max_tokens: Any = None,
        temperature: Any = None,
        stream: bool = False,
    ) -> Completion:
        return Completion(text="B", model=model, usage=self.usage, latency=0.01)

    async def acomplete(  # type: ignore[override]
        self,
        messages: Any,
        *,
        model: str,
        max_tokens: Any = None,
        temperature: Any = None,
        stream: bool = False,
    ) -> Completion:
        if self.gate is not None:
            await self.gate.wait()
        return self.complete(messages, model=model)


@pytest.mark.parametrize("mode", MODES)
def test_user_backends_without_limit_keywords_still_work(mode: str) -> None:
    router = budget_router({"ok": NoLimits()})
    assert route(router, mode).model == "ok"


def test_a_user_backend_without_deadline_is_cancelled_at_it_when_async() -> None:
    async def main() -> AllModelsFailedError:
        router = budget_router({"stuck": NoLimits(gate=asyncio.Event())}, deadline=0.2)
        with pytest.raises(AllModelsFailedError) as caught:
            await router.aroute("hi")
        settled(router)
        return caught.value

    error = asyncio.run(main())
    assert "the call's deadline passed" in (error.attempts[0].error or "")


def test_injected_clients_are_used_and_left_open() -> None:
    with hostile_server({"good": good()}) as server:
        seen: list[str] = []
        client = httpx.Client(event_hooks={"request": [lambda r: seen.append(str(r.url))]})
        b = backend(server, http_client=client)
        b.complete([{"role": "user", "content": "hi"}], model="good")
        b.close()
        assert seen == [server.url + "/chat/completions"]
        assert not client.is_closed
        assert json.loads(json.dumps(server.requests[0]))["model"] == "good"
        client.close()


def test_an_injected_transport_without_tracing_still_blames_a_slow_model() -> None:
    """A transport that reports no httpcore trace events (aiohttp's, a mock) cannot tell our
    queue from the server's time: a deadline then counts against the model, as before."""

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("cancelled at the deadline")

    async def main() -> DeadlineExceededError:
        client = httpx.AsyncClient(transport=httpx.MockTransport(slow))
        b = OpenAICompatible(base_url="http://127.0.0.1:9/v1", async_http_client=client)
        try:
            with pytest.raises(DeadlineExceededError) as caught:
                await b.acomplete(
                    [{"role": "user", "content": "hi"}], model="m", deadline=time.monotonic() + 0.1
                )
        finally:
            await client.aclose()
        return caught.value

    error = asyncio.run(main())
    assert type(error) is DeadlineExceededError
    assert error.blames_model
