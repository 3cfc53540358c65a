"""The decision explorer's endpoints (GET /v1/decisions, GET /v1/decisions/{id}) and the
history in GET /v1/stats (probability samples, detected changes) on a live `pickllm serve`
with real traffic: what each decision shows against what its client saw, who may see it, the
bound on what is kept, and that no prompt, answer or key shows."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway_servers import KEY, Process, Serve, base_config
from pickllm.gateway.decisions import DecisionRecords

AUTH = {"Authorization": f"Bearer {KEY}"}
OTHER_KEY = "sk-other-client-key-9876543210"
ADMIN_KEY = "sk-admin-key-5555555555"
PROMPT = "the secret plans of tenant 42"


def chat(gateway: Process, context: str, key: str = KEY, model: str = "auto") -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"Authorization": f"Bearer {key}", "x-pickllm-context": context}
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response


def feedback(gateway: Process, decision: str, accuracy: float) -> None:
    body = {"decision": decision, "accuracy": accuracy}
    assert httpx.post(f"{gateway.url}/v1/feedback", json=body, headers=AUTH).is_success


def get(gateway: Process, path: str, key: str = KEY, **params: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{gateway.url}{path}", params=params, headers=headers)


def decision(gateway: Process, gid: str, key: str = KEY) -> dict[str, Any]:
    response = get(gateway, f"/v1/decisions/{gid}", key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["version"] == 1
    return dict(body["decision"])


def keys_config(upstream: str) -> str:
    return base_config(upstream).replace(
        'api_keys = ["env:PICKLLM_TEST_KEY"]',
        'api_keys = ["env:PICKLLM_TEST_KEY", "env:OTHER_KEY"]\nadmin_keys = ["env:ADMIN_KEY"]',
    )


@pytest.fixture
def gateway(serve: Serve, upstream: str) -> Process:
    return serve(keys_config(upstream), env={"OTHER_KEY": OTHER_KEY, "ADMIN_KEY": ADMIN_KEY})


def test_a_decision_shows_its_context_probabilities_attempt_and_reward(gateway: Process) -> None:
    response = chat(gateway, "legal")
    gid, model = response.headers["x-pickllm-decision"], response.headers["x-pickllm-model"]
    found = decision(gateway, gid)
    assert found["id"] == gid
    assert found["router"] == "auto"
    assert found["context"] == "legal"
    assert found["status"] == "waiting"
    assert found["model"] == model
    assert set(found["probabilities"]) == {"good", "bad"}
    assert sum(found["probabilities"].values()) == pytest.approx(1.0)
    probability = float(response.headers["x-pickllm-probability"])
    assert found["probabilities"][model] == pytest.approx(probability)
    [attempt] = found["attempts"]
    assert attempt["id"] == gid
    assert attempt["model"] == model
    assert attempt["probability"] == pytest.approx(probability)
    assert attempt["outcome"] == "answered"
    assert attempt["settled"] is None
    assert attempt["reward"] is None
    assert attempt["latency"] > 0
    # The upstream reports its token usage; the model's prices make the cost.
    usage = response.json()["usage"]
    prices = {"good": (1.0, 2.0), "bad": (0.5, 0.5)}[model]
    expected = (usage["prompt_tokens"] * prices[0] + usage["completion_tokens"] * prices[1]) / 1e6
    assert attempt["cost"] == pytest.approx(expected)
    feedback(gateway, gid, 1.0)
    settled = decision(gateway, gid)
    assert settled["status"] == "settled"
    [attempt] = settled["attempts"]
    assert (attempt["settled"], attempt["accuracy"]) == ("feedback", 1.0)
    assert attempt["reward"] == pytest.approx(1.0)  # reward weighs accuracy alone
    text = get(gateway, f"/v1/decisions/{gid}").text + get(gateway, "/v1/decisions").text
    for secret in (PROMPT, KEY, "good-model: "):  # no prompt, no key, no answer
        assert secret not in text


def test_a_fallback_shows_each_attempt(serve: Serve, upstream: str) -> None:
    config = base_config(upstream) + (
        '\n[routers.flaky]\nmodels = ["broken", "good"]\nseed = 1\n'
        '[routers.flaky.policy]\nkind = "ucb"\nfloor = 0.0\n'
    )
    gateway = serve(config)
    seen = []
    for _ in range(20):  # untried models tie: a seeded draw; broken comes first soon
        response = chat(gateway, "ops", model="flaky")
        found = decision(gateway, response.headers["x-pickllm-decision"])
        seen.append([(a["model"], a["outcome"]) for a in found["attempts"]])
        if len(found["attempts"]) == 2:
            break
    assert [("broken", "failed"), ("good", "answered")] in seen, seen
    first, second = found["attempts"]
    assert first["error"] == "http_5xx"
    assert (first["settled"], first["accuracy"]) == ("cancelled", 0.0)  # fed back as wrong
    assert first["reward"] is not None
    assert second["id"] == found["id"] == response.headers["x-pickllm-decision"]
    assert decision(gateway, first["id"]) == found, "any attempt's id finds its request"


def test_each_key_sees_its_own_decisions_and_an_admin_all(gateway: Process) -> None:
    mine = chat(gateway, "tenant-a").headers["x-pickllm-decision"]
    theirs = chat(gateway, "tenant-b", key=OTHER_KEY).headers["x-pickllm-decision"]
    assert get(gateway, f"/v1/decisions/{theirs}").status_code == 404
    missing = get(gateway, "/v1/decisions/dec-000000000000-AAAAAAAAAAAAAAAAAAAAAA")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_decision"
    assert get(gateway, "/v1/decisions/not-an-id").status_code == 404
    assert [d["id"] for d in get(gateway, "/v1/decisions").json()["decisions"]] == [mine]
    everyone = get(gateway, "/v1/decisions", ADMIN_KEY).json()["decisions"]
    assert [d["id"] for d in everyone] == [theirs, mine]  # newest first
    assert decision(gateway, theirs, ADMIN_KEY)["context"] == "tenant-b"
    assert httpx.get(f"{gateway.url}/v1/decisions").status_code == 401
    assert httpx.get(f"{gateway.url}/v1/decisions/{mine}").status_code == 401


def test_the_list_filters_by_context_newest_first(gateway: Process) -> None:
    ids = {c: [] for c in ("a", "b")}  # type: dict[str, list[str]]
    for i in range(12):
        context = "a" if i % 3 else "b"
        ids[context].append(chat(gateway, context).headers["x-pickllm-decision"])
    listed = get(gateway, "/v1/decisions", router="auto", context="a", limit="5").json()
    assert [d["id"] for d in listed["decisions"]] == ids["a"][::-1][:5]
    assert all(d["context"] == "a" for d in listed["decisions"])
    assert len(get(gateway, "/v1/decisions", limit="500").json()["decisions"]) == 12
    for bad in ("0", "501", "x", "-1"):
        refused = get(gateway, "/v1/decisions", limit=bad)
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "limit"
    assert get(gateway, "/v1/decisions", router="nope").status_code == 404


def test_the_records_are_bounded() -> None:
    records = DecisionRecords(kept=3, clock=lambda: 0.0)
    for i in range(5):
        records.attempt(f"d{i}", "auto", "c", "m", 1.0, owner="key-0")
    records.attempt("d4b", "auto", "c", "m", 1.0, owner="key-0", previous="d4")
    assert len(records) == 3
    assert records.get("d0", "key-0") is None
    assert records.get("d1", "key-0") is None
    assert [r["id"] for r in records.recent("key-0", limit=10)] == ["d4b", "d3", "d2"]
    assert len(records._attempts) == 4, "forgotten attempts leave the index too"


def test_stats_sample_probabilities_and_count_detected_changes(serve: Serve, upstream: str) -> None:
    config = base_config(upstream).replace(
        '[routers.auto.policy]\nkind = "q_learning"\nlearning_rate = "sample_average"\n'
        "epsilon = 0.1\nepsilon_decay = 1.0\nepsilon_min = 0.1\n",
        '[routers.auto.policy]\nkind = "ucb"\n',
    )
    assert 'kind = "ucb"' in config
    gateway = serve(config)
    for phase, right in ((1, "good"), (2, "bad")):  # then good breaks and bad is right
        for _ in range(80):
            response = chat(gateway, "drift")
            model = response.headers["x-pickllm-model"]
            feedback(gateway, response.headers["x-pickllm-decision"], float(model == right))
        assert phase in (1, 2)
    auto = get(gateway, "/v1/stats", router="auto", context="drift").json()["routers"]["auto"]
    drift = auto["contexts"]["drift"]
    assert auto["changes"] >= 1
    assert drift["changes"] == auto["changes"], "every change was in this context"
    assert len(drift["last_changes"]) == drift["changes"]
    assert all(81 <= c["decisions"] <= 160 for c in drift["last_changes"]), "after the switch"
    # 160 decisions: a sample every 4 (the ring of 64 thinned twice), from the first on.
    assert drift["sample_every"] == 4
    samples = drift["samples"]
    assert [s["decisions"] for s in samples] == list(range(1, 161, 4))
    for s in samples:
        assert sum(s["probabilities"].values()) == pytest.approx(1.0)
        assert sum(s["counts"]) == s["decisions"]
    assert samples[-1]["counts"][0] <= drift["models"]["good"]["decisions"]


def test_stats_show_a_routers_prompt_clusters() -> None:
    from pickllm import PromptContexts, Router
    from pickllm.gateway.stats import _prompt_contexts

    topics = {
        "tax": "income tax return deduction refund filing",
        "code": "python function compile error stack trace",
        "food": "recipe oven bake flour sugar dessert",
    }
    router = Router(["a", "b"], seed=1, contexts=PromptContexts(warmup=30))
    assert _prompt_contexts(router.stats().prompt_contexts) == {
        "fitted": False,
        "fitting": False,
        "fit_error": None,
        "warmup_prompts": 0,
        "silhouette": None,
        "clusters": [],
    }
    for i in range(30):
        router.select(prompt=list(topics.values())[i % 3])
    shown = _prompt_contexts(router.stats().prompt_contexts)
    assert shown is not None
    assert shown["fitted"]
    assert shown["warmup_prompts"] == 30
    assert sorted(c["size"] for c in shown["clusters"]) == [10, 10, 10]
    for cluster in shown["clusters"]:
        assert cluster["terms"], "each cluster has its top n-grams"
        owners = {t for t, text in topics.items() for term in cluster["terms"] if term in text}
        assert len(owners) == 1, "a cluster's n-grams come from its own topic"
    assert _prompt_contexts(None) is None
