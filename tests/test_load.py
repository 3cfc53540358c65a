"""Load: 1,000 concurrent ``aroute`` calls, and threads calling ``route``, on one router against a
real local server where some models fail (500s, garbage, stalls past the timeout, 429s).

Every call is answered or fails cleanly with AllModelsFailedError, and nothing is lost or counted
twice: the feedback applied per model equals the requests the server received per model, every
attempt of every call is one of those requests, and no decision is left pending.

The outcome of each call is deterministic, whatever the timing: without a breaker and with
``max_attempts`` covering the pool, a call is answered (a model that answers is always reached)
unless its prompt is doomed (every model fails it); so exactly the doomed calls fail.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from model_farm import DOOMED, Behaviour, ModelFarm, answer, fail, model_farm
from pickllm import QLearning, Router
from pickllm.backends import OpenAICompatible
from pickllm.models import Model
from pickllm.routing import AllModelsFailedError, Attempt, RouteResult
from pickllm.scorers import MultipleChoice

CALLS = 1_000
CONTEXTS = 5
QUESTION = "Which is even?\nA) 3\nB) 4"

#: Seconds the stalling model sleeps, far past the read timeout of its backend.
STALL = 1.0
READ_TIMEOUT = 0.2

BEHAVIOURS = {
    "good": answer("The answer is B."),
    "wrong": Behaviour(text="A", delay=0.01),
    "broken": fail(500),
    "garbage": Behaviour(body=b"<html>not json</html>"),
    "stall": Behaviour(delay=STALL),
    "limited": fail(429, ("Retry-After", "1")),
}


@contextmanager
def pool(farm: ModelFarm) -> Iterator[list[Model]]:
    """One backend for the stalling model (short read timeout, long pool wait so that queueing
    for a connection never times out before the request is sent), one for the others.

    Small pools: httpcore matches every queued request against every connection on each pool
    event, so 1,000 requests queued on its default 100 connections spend most of the run there
    (about 25 s here, against 6 s with 16 connections)."""
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    shared = OpenAICompatible(base_url=farm.url, api_key="sk-load", timeout=60.0, limits=limits)
    stalling = OpenAICompatible(
        base_url=farm.url,
        api_key="sk-load",
        timeout=httpx.Timeout(60.0, read=READ_TIMEOUT),
        limits=limits,
    )
    models = [
        Model(name, backend=stalling if name == "stall" else shared, input_price=1.0)
        for name in BEHAVIOURS
    ]
    try:
        yield models
    finally:
        shared.close()
        stalling.close()


def applied_per_model(router: Router) -> Counter[str]:
    total: Counter[str] = Counter()
    for context in router.contexts():
        total.update(router.feedback_counts(context))
    return +total  # drop zeros


def check_accounting(
    router: Router,
    farm: ModelFarm,
    outcomes: Sequence[RouteResult | BaseException],
    calls: int,
) -> tuple[int, int]:
    """Every call answered or failed cleanly; per-model feedback == per-model requests."""
    assert len(outcomes) == calls
    answered = [o for o in outcomes if isinstance(o, RouteResult)]
    failed = [o for o in outcomes if isinstance(o, AllModelsFailedError)]
    others = [o for o in outcomes if not isinstance(o, RouteResult | AllModelsFailedError)]
    assert not others, f"{len(others)} calls raised something else, first: {others[0]!r}"
    attempts: list[Attempt] = [a for r in answered for a in r.attempts]
    attempts += [a for e in failed for a in e.attempts]
    for result in answered:
        # The stalling model answers B too, when the client reads before its timer fires (a
        # saturated event loop checks read timeouts late): a slow answer, not a lost one.
        assert result.model in ("good", "wrong", "stall")
        assert result.accuracy == (0.0 if result.model == "wrong" else 1.0)
        assert result.attempts[-1].error is None
        assert all(a.error for a in result.attempts[:-1])
    for error in failed:
        assert error.attempts
        assert all(a.error for a in error.attempts)
    # Every attempt was one request the server received, and got exactly one feedback.
    assert Counter(a.model for a in attempts) == +farm.calls
    assert applied_per_model(router) == +farm.calls
    # Each decision id was used once.
    ids = [a.decision.id for a in attempts]
    assert len(set(ids)) == len(ids)
    assert router.pending == 0
    return len(answered), len(failed)


#: Every DOOM-th call of the load test fails on every model.
DOOM = 100


def prompt(i: int) -> str:
    return DOOMED + QUESTION if i % DOOM == 0 else QUESTION


def deterministic_router(models: list[Model], **options: Any) -> Router:
    """No breaker (a doomed call's failures would bench the models that answer) and every model
    within max_attempts; no deadline, which would make the outcome depend on the machine."""
    return Router(
        models,
        scorer=MultipleChoice(),
        max_attempts=len(models),
        breaker=None,
        deadline=None,
        **options,
    )


def test_a_thousand_concurrent_aroutes_with_failing_models() -> None:
    with model_farm(BEHAVIOURS) as farm, pool(farm) as models:
        router = deterministic_router(models, seed=11)

        async def main() -> list[RouteResult | BaseException]:
            outcomes = await asyncio.gather(
                *(
                    router.aroute(prompt(i), context=f"tenant-{i % CONTEXTS}", reference="B")
                    for i in range(CALLS)
                ),
                return_exceptions=True,
            )
            await router.aclose()
            return outcomes

        outcomes = asyncio.run(main())
        answered, failed = check_accounting(router, farm, outcomes, CALLS)
        doomed = len(range(0, CALLS, DOOM))
        assert (answered, failed) == (CALLS - doomed, doomed)
        for i, outcome in enumerate(outcomes):
            assert isinstance(outcome, AllModelsFailedError) == (i % DOOM == 0)
        # Each failing behaviour was met and fed back at least once.
        for model in ("broken", "garbage", "stall", "limited"):
            assert farm.calls[model] > 0, model
        assert sorted(router.contexts()) == [f"tenant-{i}" for i in range(CONTEXTS)]


THREADS = 8
ROUTES_PER_THREAD = 40


def test_threads_share_one_router_through_failures() -> None:
    with model_farm(BEHAVIOURS) as farm, pool(farm) as models:
        router = deterministic_router(models, policy=QLearning(0.2), seed=4)
        outcomes: list[RouteResult | BaseException] = []
        lock = threading.Lock()
        start = threading.Barrier(THREADS)

        def work(thread: int) -> None:
            start.wait()
            for i in range(ROUTES_PER_THREAD):
                try:
                    outcome: RouteResult | BaseException = router.route(
                        QUESTION, context=f"tenant-{(thread + i) % CONTEXTS}", reference="B"
                    )
                except BaseException as error:  # anything at all is recorded
                    outcome = error
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        answered, failed = check_accounting(router, farm, outcomes, THREADS * ROUTES_PER_THREAD)
        assert (answered, failed) == (THREADS * ROUTES_PER_THREAD, 0)
        assert not any("Already borrowed" in str(o) for o in outcomes)
        # The router still serves, learns and snapshots after the stress.
        assert Router.restore(router.snapshot()).snapshot() == router.snapshot()
