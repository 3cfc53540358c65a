"""`pickllm serve` as a subprocess, driven by the real openai SDK (sync, async, streaming) and
plain HTTP, in front of the local upstream (tests/gateway/upstream.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import openai
import pytest

from gateway_client import client, wait_for
from gateway_servers import (
    KEY,
    Process,
    Serve,
    base_config,
    metric,
    upstream_last,
    upstream_stats,
)
from pickllm.logs import read_log


def post(
    gateway: Process, path: str, body: object, key: str | None = KEY, **kw: str
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    headers.update(kw)
    return httpx.post(f"{gateway.url}{path}", json=body, headers=headers, timeout=30)


def chat(model: str = "auto", content: str = "hi", **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture
def gateway(serve: Serve, upstream: str) -> Process:
    return serve(base_config(upstream))


def test_sync_client_headers_and_model(gateway: Process) -> None:
    with client(gateway) as openai_client:
        raw = openai_client.chat.completions.with_raw_response.create(
            model="auto",
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"X-PickLLM-Context": "finance"},
        )
    completion = raw.parse()
    chosen = raw.headers["x-pickllm-model"]
    assert chosen in ("good", "bad")
    assert completion.model == chosen
    assert raw.headers["x-pickllm-context"] == "finance"
    assert float(raw.headers["x-pickllm-probability"]) == pytest.approx(0.5)
    assert raw.headers["x-pickllm-decision"].startswith("dec-")
    upstream_id = "good-model" if chosen == "good" else "bad"
    assert completion.choices[0].message.content == f"{upstream_id}: hello"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 15


@pytest.mark.anyio
async def test_async_client(gateway: Process) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{gateway.url}/v1", api_key=KEY, max_retries=0
    ) as async_client:
        completion = await async_client.chat.completions.create(
            model="good", messages=[{"role": "user", "content": "x"}]
        )
        stream = await async_client.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "y"}],
            stream=True,
            extra_body={"pickllm_context": "async"},
        )
        chunks = [chunk async for chunk in stream]
    assert completion.model == "good"
    assert completion.choices[0].message.content == "good-model: x"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in ("good-model: y ", "bad: y ")
    assert metric(gateway, "pickllm_decisions_total", context="async") == 1


def test_streaming_passes_events_through_and_measures_ttft(gateway: Process) -> None:
    with (
        client(gateway) as openai_client,
        openai_client.chat.completions.with_streaming_response.create(
            model="auto",
            messages=[{"role": "user", "content": "one two"}],
            stream=True,
        ) as response,
    ):
        chosen = response.headers["x-pickllm-model"]
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    upstream_id = "good-model" if chosen == "good" else "bad"
    assert text == f"{upstream_id}: one two "
    assert {c.model for c in chunks} == {chosen}
    # the gateway asked for usage to price the answer; the client did not, so it gets none
    assert all(c.usage is None for c in chunks)
    assert metric(gateway, "pickllm_upstream_ttft_seconds_count", model=chosen) == 1


def test_stream_usage_when_the_client_asks(gateway: Process) -> None:
    with client(gateway) as openai_client:
        chunks = list(
            openai_client.chat.completions.create(
                model="good",
                messages=[{"role": "user", "content": "x"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15


def test_whole_body_is_forwarded_with_model_replaced(gateway: Process, upstream: str) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = chat(
        "auto",
        tools=tools,
        response_format={"type": "json_object"},
        temperature=0.25,
        pickllm_context="legal",
    )
    response = post(gateway, "/v1/chat/completions", body)
    assert response.status_code == 200
    assert response.headers["x-pickllm-context"] == "legal"
    received = upstream_last(upstream)
    assert received["model"] in ("good-model", "bad")
    assert received["tools"] == tools
    assert received["response_format"] == {"type": "json_object"}
    assert received["temperature"] == 0.25
    assert "pickllm_context" not in received  # pickllm's own field is not forwarded


def test_models_endpoint(gateway: Process) -> None:
    with client(gateway) as openai_client:
        ids = [m.id for m in openai_client.models.list()]
    assert ids == ["auto", "good", "bad", "broken"]


def test_health_and_readiness(gateway: Process) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{gateway.url}/readyz").json() == {"ready": True}


def test_it_learns_from_delayed_feedback(gateway: Process) -> None:
    """Feedback says good is right (1) and bad wrong (0): with epsilon 0.1 the greedy choice,
    good, is then picked with probability 0.95, so 30 later requests pick it at least 20 times
    except with probability below 1e-9 (binomial tail); the seed makes the run repeatable."""
    chosen = []
    with client(gateway) as openai_client:
        for _ in range(40):
            raw = openai_client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": "q"}]
            )
            model = raw.headers["x-pickllm-model"]
            chosen.append(model)
            accepted = post(
                gateway,
                "/v1/feedback",
                {
                    "decision": raw.headers["x-pickllm-decision"],
                    "accuracy": 1.0 if model == "good" else 0,
                },
            )
            assert accepted.status_code == 200
    assert chosen[10:].count("good") >= 20
    assert metric(gateway, "pickllm_feedback_settled_total", outcome="feedback") == 40
    assert metric(gateway, "pickllm_pending_feedback", router="auto") == 0
    assert metric(gateway, "pickllm_reward_count", model="good", context="default") > 0


def test_feedback_errors(gateway: Process) -> None:
    response = post(gateway, "/v1/chat/completions", chat())
    gid = response.headers["x-pickllm-decision"]
    for body, status, code in [
        ({"decision": gid, "accuracy": 1.5}, 400, None),
        ({"decision": gid, "accuracy": True}, 400, None),
        ({"decision": 3, "accuracy": 1.0}, 400, None),
        ({"decision": "dec-unknown", "accuracy": 1.0}, 400, None),
        ({"decision": "dec-0123456789ab-" + "A" * 22, "accuracy": 1.0}, 404, "unknown_decision"),
    ]:
        refused = post(gateway, "/v1/feedback", body)
        assert refused.status_code == status
        assert refused.json()["error"]["code"] == code
    assert post(gateway, "/v1/feedback", {"decision": gid, "accuracy": 0.5}).status_code == 200
    again = post(gateway, "/v1/feedback", {"decision": gid, "accuracy": 0.5})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "decision_settled"
    assert metric(gateway, "pickllm_feedback_settled_total", outcome="feedback") == 1


def test_feedback_timeout_applies_the_default_accuracy(serve: Serve, upstream: str) -> None:
    gateway = serve(base_config(upstream, "feedback_timeout = 0.05\ndefault_accuracy = 0.5"))
    gid = post(gateway, "/v1/chat/completions", chat()).headers["x-pickllm-decision"]
    wait_for(
        lambda: metric(gateway, "pickllm_feedback_settled_total", outcome="expired") == 1,
        "the decision to expire",
    )
    late = post(gateway, "/v1/feedback", {"decision": gid, "accuracy": 1.0})
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "decision_expired"
    assert metric(gateway, "pickllm_reward_count", router="auto") == 1


@pytest.mark.parametrize("stream", [False, True])
def test_judge_grades_what_got_no_feedback(serve: Serve, upstream: str, stream: bool) -> None:
    """With a judge, a decision without feedback by its deadline gets the judge's grade (the
    local judge always says 7/10): the reward, with accuracy the only weight, is 0.7."""
    gateway = serve(
        base_config(upstream, "feedback_timeout = 0.05\njudge = { model = 'judge' }")
        + '\n[models.judge]\nbase_url = "'
        + upstream
        + '"\nmodel_id = "judge-7"\n'
    )
    gid = post(gateway, "/v1/chat/completions", chat(stream=stream)).headers["x-pickllm-decision"]
    wait_for(
        lambda: metric(gateway, "pickllm_feedback_settled_total", outcome="expired") == 1,
        "the judge's grade",
    )
    assert metric(gateway, "pickllm_reward_sum", router="auto") == pytest.approx(0.7)
    late = post(gateway, "/v1/feedback", {"decision": gid, "accuracy": 1.0})
    assert late.status_code == 410


def test_decision_log(serve: Serve, upstream: str, tmp_path: Path) -> None:
    """decision_log = folder: every decision and its feedback land in the router's log,
    readable by pickllm evaluate once the gateway has stopped (and closed the log)."""
    folder = tmp_path / "decisions"
    gateway = serve(base_config(upstream, f'decision_log = "{folder}"'))
    for accuracy in (1.0, 0.0, 0.5):
        response = post(gateway, "/v1/chat/completions", chat())
        gid = response.headers["x-pickllm-decision"]
        assert post(gateway, "/v1/feedback", {"decision": gid, "accuracy": accuracy}).is_success
    gateway.stop()
    log = read_log(folder)
    assert [r.accuracy for r in log.records] == [1.0, 0.0, 0.5]
    assert log.unanswered == 0


def test_warm_start_seeds_the_contexts_before_the_first_request(
    serve: Serve, upstream: str, tmp_path: Path
) -> None:
    """warm_start from means (context math) and from a RouterBench file next to the config
    (context code): Q-learning (epsilon 0.1, sample averages) starts each seeded context with
    the seeded means, so its first decision there already gives the seeded best model
    1 - 0.1 + 0.1/2 = 0.95 (a fresh context ties both at 0.5); an unseeded context stays fresh."""
    rows = ["sample_id,prompt,eval_name,good,good|total_cost,bad,bad|total_cost"]
    rows += [f"q{i},p,code,1.0,0.001,0.0,0.0001" for i in range(5)]
    (tmp_path / "code.csv").write_text("\n".join(rows) + "\n")
    seeded = 'warm_start = { path = "code.csv" }'
    gateway = serve(base_config(upstream, seeded))
    means = "warm_start = { weight = 20, means = { math = { good = [0, 40], bad = [1, 40] } } }"
    other = serve(base_config(upstream, means))
    for server, context, best in ((gateway, "code", "good"), (other, "math", "bad")):
        response = post(server, "/v1/chat/completions", chat(), **{"x-pickllm-context": context})
        model, probability = (
            response.headers["x-pickllm-model"],
            float(response.headers["x-pickllm-probability"]),
        )
        assert probability == pytest.approx(0.95 if model == best else 0.05, abs=1e-12)
        stats = httpx.get(
            f"{server.url}/v1/stats",
            params={"router": "auto", "context": context},
            headers={"Authorization": f"Bearer {KEY}"},
        ).json()
        learned = stats["routers"]["auto"]["contexts"][context]["probabilities"]
        assert learned[best] == pytest.approx(0.95, abs=1e-12)
    fresh = post(gateway, "/v1/chat/completions", chat(), **{"x-pickllm-context": "elsewhere"})
    assert float(fresh.headers["x-pickllm-probability"]) == pytest.approx(0.5, abs=1e-12)
    # With two workers, each seeds its own router: whichever answers, math is already seeded
    # (no feedback is sent, so nothing moves the learners between requests).
    workers = serve(base_config(upstream, means), workers=2)
    for _ in range(6):
        response = post(workers, "/v1/chat/completions", chat(), **{"x-pickllm-context": "math"})
        model, probability = (
            response.headers["x-pickllm-model"],
            float(response.headers["x-pickllm-probability"]),
        )
        assert probability == pytest.approx(0.95 if model == "bad" else 0.05, abs=1e-12)


def test_auth(gateway: Process, upstream: str) -> None:
    before = upstream_stats(upstream)["requests"]
    for key in (None, "wrong-key"):
        refused = post(gateway, "/v1/chat/completions", chat(), key=key)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert KEY not in refused.text
    with client(gateway, key="nope") as refused_client, pytest.raises(openai.AuthenticationError):
        refused_client.models.list()
    assert upstream_stats(upstream)["requests"] == before  # nothing was routed
    assert metric(gateway, "pickllm_decisions_total") == 0
    assert KEY not in gateway.stop()  # nor in the logs


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, None),
        (b"[1, 2]", 400, None),
        (json.dumps(chat("nonexistent")).encode(), 404, "model"),
        (json.dumps(chat(3)).encode(), 400, "model"),
        (json.dumps({"model": "auto", "messages": "hi"}).encode(), 400, "messages"),
        (json.dumps({"model": "auto", "messages": []}).encode(), 400, "messages"),
        (json.dumps(chat(stream="yes")).encode(), 400, "stream"),
        (json.dumps(chat(pickllm_context=7)).encode(), 400, "pickllm_context"),
        (json.dumps(chat(content="x" * 5_000_000)).encode(), 413, None),
    ],
)
def test_bad_requests_get_openai_errors(
    gateway: Process, body: bytes, status: int, param: str | None
) -> None:
    response = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"]
    assert "Traceback" not in response.text


def test_unknown_route_and_method(gateway: Process) -> None:
    assert httpx.get(f"{gateway.url}/v2/nothing").json()["error"]["code"] == "not_found"
    assert httpx.get(f"{gateway.url}/v1/chat/completions").status_code == 405


def test_fallback_before_the_first_byte(serve: Serve, upstream: str) -> None:
    """Router over [broken, good]: every request is answered by good; each time the learner
    picked broken first, that call failed (fed back as zero accuracy) and good answered."""
    gateway = serve(
        base_config(upstream, "")
        + '\n[routers.fallback]\nmodels = ["broken", "good"]\nseed = 3\nbreaker = false\n'
    )
    for stream in (False, True, False, True):
        response = post(gateway, "/v1/chat/completions", chat("fallback", stream=stream))
        assert response.status_code == 200
        assert response.headers["x-pickllm-model"] == "good"
    failed = metric(gateway, "pickllm_upstream_failures_total", model="broken", kind="http_5xx")
    picked = metric(gateway, "pickllm_decisions_total", router="fallback", model="broken")
    assert failed == picked >= 1
    assert metric(gateway, "pickllm_decisions_total", router="fallback", model="good") == 4


def test_all_models_failing_is_a_502(serve: Serve, upstream: str) -> None:
    gateway = serve(base_config(upstream) + '\n[routers.down]\nmodels = ["broken"]\n')
    response = post(gateway, "/v1/chat/completions", chat("down"))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_failed"
    assert "broken: broken: HTTP 500" in response.json()["error"]["message"]


def test_breaker_opens_after_failures(serve: Serve, upstream: str) -> None:
    gateway = serve(
        base_config(upstream)
        + '\n[routers.down]\nmodels = ["broken"]\nbreaker = { failures = 2, cooldown = 600.0 }\n'
    )
    statuses = [post(gateway, "/v1/chat/completions", chat("down")).status_code for _ in range(4)]
    assert statuses == [502, 502, 503, 503]
    assert metric(gateway, "pickllm_breaker_state", router="down", model="broken") == 2


def test_retry_after_as_an_http_date_holds_the_model_out(serve: Serve, upstream: str) -> None:
    """A 429 whose Retry-After is an HTTP-date an hour ahead: the model is held out (breaker
    off, so only the Retry-After can hold it), for at most max_retry_after."""
    gateway = serve(
        base_config(upstream)
        + '\n[models.late]\nbase_url = "'
        + upstream
        + '"\nmodel_id = "fail-429-date"\n'
        + '[routers.limited]\nmodels = ["late"]\nbreaker = false\nmax_retry_after = 120.0\n'
    )
    received = upstream_stats(upstream)["requests"]
    first = post(gateway, "/v1/chat/completions", chat("limited"))
    assert first.status_code == 502
    assert "late: HTTP 429" in first.json()["error"]["message"]
    held = post(gateway, "/v1/chat/completions", chat("limited"))
    assert held.status_code == 503
    assert held.json()["error"]["code"] == "no_model_available"
    (seconds,) = re.findall(
        r"late: circuit open for ([0-9.]+) s more", held.json()["error"]["message"]
    )
    assert 0 < float(seconds) <= 120.0
    assert upstream_stats(upstream)["requests"] == received + 1  # never called while held
    assert metric(gateway, "pickllm_breaker_state", router="limited", model="late") == 2


def test_upstream_refusal_of_the_request_is_passed_back(serve: Serve, upstream: str) -> None:
    gateway = serve(
        base_config(upstream)
        + '\n[models.picky]\nbase_url = "'
        + upstream
        + '"\nmodel_id = "bad-request"\n[routers.strict]\nmodels = ["picky"]\n'
    )
    response = post(gateway, "/v1/chat/completions", chat("strict"))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"
    # the request's fault, not the model's: nothing learned, the decision is cancelled
    assert metric(gateway, "pickllm_reward_count", router="strict") == 0
    assert metric(gateway, "pickllm_feedback_settled_total", outcome="cancelled") == 1


def test_pass_through_is_measured_without_a_decision(gateway: Process) -> None:
    response = post(gateway, "/v1/chat/completions", chat("bad"))
    assert response.status_code == 200
    assert response.headers["x-pickllm-model"] == "bad"
    assert "x-pickllm-decision" not in response.headers
    assert metric(gateway, "pickllm_upstream_latency_seconds_count", model="bad") == 1
    assert metric(gateway, "pickllm_decisions_total") == 0


def test_client_leaving_mid_stream_cancels_upstream_and_settles_once(
    serve: Serve, upstream: str
) -> None:
    gateway = serve(
        base_config(upstream)
        + '\n[models.hang]\nbase_url = "'
        + upstream
        + '"\nmodel_id = "hang-stream"\n[routers.slow]\nmodels = ["hang"]\n'
    )
    abandoned = upstream_stats(upstream)["abandoned"]
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json=chat("slow", stream=True),
        headers={"Authorization": f"Bearer {KEY}"},
    ) as response:
        gid = response.headers["x-pickllm-decision"]
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    wait_for(
        lambda: upstream_stats(upstream)["abandoned"] == abandoned + 1,
        "the upstream call to be cancelled",
    )
    wait_for(
        lambda: metric(gateway, "pickllm_feedback_settled_total", outcome="cancelled") == 1,
        "the decision to be settled",
    )
    refused = post(gateway, "/v1/feedback", {"decision": gid, "accuracy": 1.0})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "decision_cancelled"
    assert metric(gateway, "pickllm_reward_count", router="slow") == 0
    assert metric(gateway, "pickllm_pending_feedback", router="slow") == 0


def test_broken_stream_is_reported_and_fed_back(serve: Serve, upstream: str) -> None:
    gateway = serve(
        base_config(upstream)
        + '\n[models.cut]\nbase_url = "'
        + upstream
        + '"\nmodel_id = "broken-stream"\n[routers.cutting]\nmodels = ["cut"]\n'
    )
    with (
        client(gateway) as openai_client,
        pytest.raises(openai.APIError, match=r"upstream stream broke|ended before"),
    ):
        list(
            openai_client.chat.completions.create(
                model="cutting", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert (
        metric(gateway, "pickllm_upstream_failures_total", model="cut", kind="broken_stream") == 1
    )
    assert metric(gateway, "pickllm_reward_count", router="cutting", model="cut") == 1


def test_budget_refuses_what_cannot_fit(serve: Serve, upstream: str) -> None:
    config = (
        base_config(upstream)
        .replace("output_price = 2.0", "output_price = 2.0\nmax_tokens = 100")
        .replace("output_price = 0.5", "output_price = 0.5\nmax_tokens = 100")
    )
    gateway = serve(
        config + '\n[routers.capped]\nmodels = ["good", "bad"]\n'
        "budget = { per_context = 0.00001 }\n"
    )
    response = post(gateway, "/v1/chat/completions", chat("capped"))
    assert response.status_code == 429
    assert response.json()["error"]["type"] == "insufficient_quota"
    assert metric(gateway, "pickllm_decisions_total", router="capped") == 0


def test_metrics_exposition(gateway: Process) -> None:
    post(gateway, "/v1/chat/completions", chat())
    text = httpx.get(f"{gateway.url}/metrics").text
    for name in (
        "pickllm_decisions_total",
        "pickllm_upstream_latency_seconds_bucket",
        "pickllm_breaker_state",
        "pickllm_pending_feedback",
    ):
        assert name in text
    assert metric(gateway, "pickllm_pending_feedback", router="auto") == 1


def test_several_workers_share_metrics_and_take_feedback_anywhere(
    serve: Serve, upstream: str
) -> None:
    """Two workers: each request and each feedback goes to whichever worker accepts the
    connection; feedback that reaches the other worker is handed on, so every one is applied
    exactly once, and /metrics adds up both workers."""
    gateway = serve(base_config(upstream), workers=2)
    ids = []
    for _ in range(12):
        with httpx.Client() as fresh:  # a new connection each time, as many clients would
            response = fresh.post(
                f"{gateway.url}/v1/chat/completions",
                json=chat(),
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert response.status_code == 200
        ids.append(response.headers["x-pickllm-decision"])
    for gid in ids:
        with httpx.Client() as fresh:
            accepted = fresh.post(
                f"{gateway.url}/v1/feedback",
                json={"decision": gid, "accuracy": 1.0},
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert accepted.status_code == 200, accepted.text
    repeated = post(gateway, "/v1/feedback", {"decision": ids[0], "accuracy": 1.0})
    assert repeated.status_code == 409
    assert (
        metric(gateway, "pickllm_decisions_total", router="auto", model="good")
        + metric(gateway, "pickllm_decisions_total", router="auto", model="bad")
        == 12
    )
    assert metric(gateway, "pickllm_feedback_settled_total", outcome="feedback") == 12
    assert "each worker learns alone" in gateway.stop()


def test_workers_learn_as_one_through_shared_state(
    serve: Serve, upstream: str, tmp_path: Path
) -> None:
    """shared = {url, name}: two workers publish every feedback to one Redis stream; a third
    router with the same configuration and state, in this process, learns all of it."""
    from pickllm import QLearning, RedisState, Reward, Router
    from redis_servers import RedisServer

    redis = RedisServer(tmp_path, persistent=False)
    try:
        shared = f'shared = {{ url = "{redis.url}", name = "gateway-test" }}'
        gateway = serve(base_config(upstream, shared), workers=2)
        for accuracy in (1.0, 0.0, 1.0, 0.0, 1.0, 1.0):
            with httpx.Client() as fresh:
                response = fresh.post(
                    f"{gateway.url}/v1/chat/completions",
                    json=chat(),
                    headers={"Authorization": f"Bearer {KEY}"},
                )
            gid = response.headers["x-pickllm-decision"]
            assert post(gateway, "/v1/feedback", {"decision": gid, "accuracy": accuracy}).is_success
        # A feedback's event is published by the worker's background thread, after the reply:
        # stopping the gateway closes each worker's router, which publishes what it still holds,
        # so every event is in Redis before the observer syncs (a sync waits only for events
        # published before it was called).
        assert "learns alone" not in gateway.stop()
        policy = QLearning("sample_average", epsilon=0.1, epsilon_decay=1.0, epsilon_min=0.1)
        observer = Router(
            ["good", "bad"],
            policy=policy,
            reward=Reward(accuracy=1.0, cost=0.0, latency=0.0),
            shared=RedisState(url=redis.url, name="gateway-test"),
        )
        try:
            observer.sync(timeout=30.0)
            assert sum(observer.feedback_counts().values()) == 6
        finally:
            observer.close()
    finally:
        redis.stop()
