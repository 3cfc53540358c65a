"""GET /v1/stats and the decision explorer over `pickllm serve --workers 2`, for real: whichever
worker a request reaches answers for all of them (the other's data through its socket), says
which worker answered and how many there are, and a worker that does not answer is reported
missing instead of holding the answer."""

from __future__ import annotations

import socket
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway_servers import KEY, STARTUP_TIMEOUT_S, Process, Serve, base_config
from pickllm.gateway.app import PEERS_ENV
from pickllm.gateway.feedback import DECISION_ID

AUTH = {"Authorization": f"Bearer {KEY}"}


def fresh(gateway: Process, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A request on a new connection, as another client's would be (any worker may take it)."""
    with httpx.Client(base_url=gateway.url, headers=AUTH, timeout=30) as client:
        return client.request(method, path, **kwargs)


def send(gateway: Process, context: str, n: int) -> list[httpx.Response]:
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    out = []
    for _ in range(n):
        response = fresh(
            gateway,
            "POST",
            "/v1/chat/completions",
            json=body,
            headers={"x-pickllm-context": context},
        )
        assert response.status_code == 200
        out.append(response)
    return out


def peers_folder(gateway: Process) -> Path:
    """The folder of the workers' sockets (in a worker's environment)."""
    pid = gateway.process.pid
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        for variable in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
            if variable.startswith(PEERS_ENV.encode() + b"="):
                return Path(variable.split(b"=", 1)[1].decode())
    raise AssertionError("no worker names the peers folder")


def both_listening(gateway: Process) -> Path:
    """Wait until both workers listen in their folder (the gateway is ready when one is)."""
    folder = peers_folder(gateway)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while len(list(folder.glob("*.sock"))) < 2:
        assert time.monotonic() < deadline, "the second worker did not start"
        time.sleep(0.05)
    return folder


def test_every_worker_answers_for_all(serve: Serve, upstream: str) -> None:
    gateway = serve(base_config(upstream), workers=2)
    both_listening(gateway)
    responses = send(gateway, "legal", 30) + send(gateway, "support", 10)
    chosen = Counter(r.headers["x-pickllm-model"] for r in responses)
    legal = Counter(r.headers["x-pickllm-model"] for r in responses[:30])
    deciders = {DECISION_ID.match(r.headers["x-pickllm-decision"]).group(1) for r in responses}
    for response in responses[:30]:  # feedback through any worker
        body = {"decision": response.headers["x-pickllm-decision"], "accuracy": 1.0}
        assert fresh(gateway, "POST", "/v1/feedback", json=body).is_success
    for _ in range(4):  # each answer, from whichever worker, is the whole gateway's
        body = fresh(gateway, "GET", "/v1/stats").json()
        worker = body["worker"]
        assert worker["workers"] == 2
        assert len(set(worker["answered"])) == 2
        assert worker["answered"][0] == worker["id"]
        assert worker["missing"] == []
        assert deciders <= set(worker["answered"])
        auto = body["routers"]["auto"]
        assert auto["decisions"] == 40
        assert auto["pending_feedback"] == 10
        assert {m: s["decisions"] for m, s in auto["totals"].items()} == {
            m: chosen[m] for m in ("good", "bad")
        }
        assert auto["contexts_tracked"] == 2
        merged = auto["contexts"]["legal"]
        assert merged["decisions"] == 30
        assert {m: s["decisions"] for m, s in merged["models"].items()} == {
            m: legal[m] for m in ("good", "bad")
        }
        assert sum(merged["probabilities"].values()) == pytest.approx(1.0)
        for model in ("good", "bad"):
            if legal[model]:  # every settled call of legal carried accuracy 1
                assert merged["models"][model]["accuracy_avg"] == 1.0
                assert merged["models"][model]["latency_p50"] > 0
    detail = fresh(gateway, "GET", "/v1/stats", params={"router": "auto", "context": "legal"})
    legal_detail = detail.json()["routers"]["auto"]["contexts"]["legal"]
    assert legal_detail["series_worker"] in deciders
    assert Counter(legal_detail["recent"]) <= legal  # one worker's share of the series
    # The explorer: any decision from any worker, and the most recent across both.
    for response in responses[::5]:
        gid = response.headers["x-pickllm-decision"]
        found = fresh(gateway, "GET", f"/v1/decisions/{gid}")
        assert found.status_code == 200
        assert found.json()["decision"]["model"] == response.headers["x-pickllm-model"]
    listed = fresh(gateway, "GET", "/v1/decisions", params={"limit": "500"}).json()
    assert len(set(listed["worker"]["answered"])) == 2
    ids = [d["id"] for d in listed["decisions"]]
    assert ids == [r.headers["x-pickllm-decision"] for r in responses][::-1]


def test_a_worker_that_does_not_answer_is_reported_missing(serve: Serve, upstream: str) -> None:
    gateway = serve(base_config(upstream), workers=2)
    folder = both_listening(gateway)
    silent, dead = "0123456789ab", "ba9876543210"
    # A worker that hangs (listens, never answers: as if stopped), and one that died (its
    # socket file left, nobody listening).
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as hung:
        hung.bind(str(folder / f"{silent}.sock"))
        hung.listen()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as gone:
            gone.bind(str(folder / f"{dead}.sock"))
        response = fresh(gateway, "GET", "/v1/stats")
        assert response.status_code == 200
        worker = response.json()["worker"]
        assert len(set(worker["answered"])) == 2, "both real workers answered"
        assert sorted(worker["missing"]) == sorted([dead, silent])
        assert not (folder / f"{dead}.sock").exists(), "a dead worker's socket is removed"
        found = fresh(gateway, "GET", f"/v1/decisions/dec-{silent}-AAAAAAAAAAAAAAAAAAAAAA")
        assert found.status_code == 503
        assert found.json()["error"]["code"] == "worker_unavailable"
        gone_id = f"dec-{dead}-AAAAAAAAAAAAAAAAAAAAAA"
        assert fresh(gateway, "GET", f"/v1/decisions/{gone_id}").status_code == 404
    assert f"worker {silent} did not answer stats" in gateway.stop()


def raw_model(decisions: int, reward: list[float], costs: list[float]) -> dict[str, Any]:
    return {
        "decisions": decisions,
        "_raw": {"reward": reward, "accuracy": [0, 0.0], "costs": costs, "latencies": costs},
    }


def raw_worker(
    decisions: int,
    probability: float,
    breaker: str,
    changes: int,
    spent: float,
    costs: list[float],
    reward: float,
) -> dict[str, Any]:
    """One worker's raw snapshot of router auto (models a, b; context c holding everything)."""
    models = {
        "a": raw_model(decisions, [decisions, reward], costs),
        "b": raw_model(0, [0, 0.0], []),
    }
    context = {
        "decisions": decisions,
        "probabilities": {"a": probability, "b": 1 - probability},
        "changes": changes,
        "models": models,
    }
    return {
        "version": 1,
        "time": 5.0,
        "routers": {
            "auto": {
                "models": ["a", "b"],
                "decisions": decisions,
                "pending_feedback": 1,
                "breakers": {"a": breaker, "b": "closed"},
                "budget_spent_usd": spent,
                "contexts_tracked": 1,
                "untracked_decisions": 0,
                "changes": changes,
                "prompt_contexts": None,
                "totals": models,
                "contexts": {"c": context},
                "_shared": False,
            }
        },
    }


def test_the_merge_rules() -> None:
    from pickllm.gateway.merge import merge_snapshots

    one = raw_worker(30, 0.9, "closed", 1, 0.5, [1.0, 2.0, 3.0], reward=1.0)
    two = raw_worker(10, 0.5, "open", 2, 0.25, [4.0], reward=0.4)
    merged = merge_snapshots({"w1": one, "w2": two}, one_context=False)["routers"]["auto"]
    assert merged["decisions"] == 40
    assert merged["pending_feedback"] == 2
    assert merged["breakers"] == {"a": "open", "b": "closed"}  # as open as on any worker
    assert merged["changes"] == 3  # each worker learns alone: its changes are its own
    assert merged["budget_spent_usd"] == 0.75
    c = merged["contexts"]["c"]
    # Weighted by decisions: (30 * 0.9 + 10 * 0.5) / 40.
    assert c["probabilities"]["a"] == pytest.approx(0.8)
    assert c["leader"] == "a"
    assert not c["converged"]
    assert c["changes"] == 3
    assert c["models"]["a"]["cost_p50"] == 2.0  # the union's median of 1, 2, 3, 4
    assert c["models"]["a"]["cost_p99"] == 4.0
    # Weighted by observations, at most 20 (the averages' span): (20 * 1.0 + 10 * 0.4) / 30.
    assert c["models"]["a"]["reward_avg"] == pytest.approx(0.8)
    assert c["models"]["b"]["reward_avg"] is None
    assert merged["contexts_converged"] == 0
    # With shared state every worker sees the same changes and budget: the largest is kept.
    for snapshot in (one, two):
        snapshot["routers"]["auto"]["_shared"] = True
    shared = merge_snapshots({"w1": one, "w2": two}, one_context=False)["routers"]["auto"]
    assert (shared["changes"], shared["budget_spent_usd"]) == (2, 0.5)
    assert "_raw" not in str(shared)
