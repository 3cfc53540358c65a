"""`pickllm serve` against hostile clients and hostile upstreams (issue 20), on real sockets:
the gateway a subprocess, the upstreams real servers (tests/gateway/upstream.py, and the raw
socket server of tests/hostile_server.py), clients the real openai SDK or plain HTTP.

Each test is one case of docs/reliability.md's gateway fault matrix. No test measures time: a
deadline or timeout is a mechanism here, and what is asserted is what happened.
"""

from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway_client import WAIT_S, client, wait_for
from gateway_servers import KEY, Process, Serve, metric, start, upstream_stats
from hostile_server import HostileServer, Send, hostile_server
from hostile_server import headers as http_headers
from pickllm.errors import ConfigError
from pickllm.gateway.config import GatewayConfig
from pickllm.gateway.feedback import DECISION_ID
from pickllm.gateway.serve import serve as serve_gateway
from servers import free_port

#: The provider key of the upstreams (what must never reach a client).
PROVIDER_KEY = "sk-provider-secret-0123456789abcdef"
#: A second client key, and an admin key.
OTHER_KEY = "sk-gateway-other-key-9876543210"
ADMIN_KEY = "sk-gateway-admin-key-5555555555"
ENV = {"PROVIDER_KEY": PROVIDER_KEY, "OTHER_KEY": OTHER_KEY, "ADMIN_KEY": ADMIN_KEY}


def post(
    gateway: Process,
    body: object,
    key: str = KEY,
    path: str = "/v1/chat/completions",
    **headers: str,
) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}{path}",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=60,
    )


def chat(model: str = "r", **extra: object) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def models(upstream: str, **ids: str) -> str:
    return "".join(
        f'[models.{name}]\nbase_url = "{upstream}"\nmodel_id = "{model_id}"\n'
        'api_key = "env:PROVIDER_KEY"\ninput_price = 1.0\noutput_price = 2.0\nmax_tokens = 100\n'
        for name, model_id in ids.items()
    )


SERVER = """
[server]
api_keys = ["env:PICKLLM_TEST_KEY", "env:OTHER_KEY"]
admin_keys = ["env:ADMIN_KEY"]
"""


def secrets_absent(text: str) -> None:
    for secret in (PROVIDER_KEY, KEY, OTHER_KEY, ADMIN_KEY, "hunter2", "sk-proj-leaked"):
        assert secret not in text


# ------------------------------------------------------------------ nothing secret shown


@pytest.mark.parametrize("routed", [False, True])
def test_upstream_error_bodies_never_show_keys(serve: Serve, upstream: str, routed: bool) -> None:
    """An upstream 400 echoing the provider key, a token and a URL with a password: the client
    gets the gateway's own error, redacted; the log holds none of it either."""
    config = SERVER + models(upstream, leaky="echo-key-400") + '[routers.r]\nmodels = ["leaky"]\n'
    gateway = serve(config, env=ENV)
    with client(gateway) as sdk, pytest.raises(openai.BadRequestError) as refused:
        sdk.chat.completions.create(**chat("r" if routed else "leaky"))
    secrets_absent(refused.value.response.text)
    error = refused.value.response.json()["error"]
    assert "***" in error["message"]
    assert error["code"] == "x"
    assert "***" in error["param"]
    secrets_absent(gateway.stop())


@pytest.mark.parametrize("routed", [False, True])
def test_failures_never_name_the_upstreams_host(serve: Serve, routed: bool) -> None:
    """Nothing listens at the model's port: the error names the model, not where it lives."""
    port = free_port()
    config = SERVER + models(f"http://127.0.0.1:{port}/v1", gone="m")
    config += '[routers.r]\nmodels = ["gone"]\n'
    gateway = serve(config, env=ENV)
    response = post(gateway, chat("r" if routed else "gone"))
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_failed"
    assert "gone" in response.text
    assert str(port) not in response.text
    assert "127.0.0.1" not in response.text


def test_credentials_in_base_url_are_refused_unshown() -> None:
    text = '[models.m]\nbase_url = "http://user:hunter2@127.0.0.1:9/v1"\n'
    with pytest.raises(ConfigError, match="must not hold credentials") as refused:
        GatewayConfig.from_toml(text)
    assert "hunter2" not in str(refused.value)


# ------------------------------------------------------------------ blame what failed


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_revoked_key_is_the_models_failure(serve: Serve, upstream: str, status: int) -> None:
    """One model's deployment is broken (its key revoked, its id retired): every request still
    gets an answer from the other model, the broken one is blamed and its breaker opens."""
    config = SERVER + models(upstream, broken=f"echo-key-{status}", fine="fine")
    config += """
[routers.r]
models = ["broken", "fine"]
seed = 3
breaker = { failures = 2, cooldown = 600.0 }
"""
    gateway = serve(config, env=ENV)
    with client(gateway) as sdk:
        for _ in range(20):
            raw = sdk.chat.completions.with_raw_response.create(**chat())
            assert raw.headers["x-pickllm-model"] == "fine"
            secrets_absent(raw.text)
    failures = metric(gateway, "pickllm_upstream_failures_total", model="broken")
    assert failures == metric(
        gateway, "pickllm_upstream_failures_total", model="broken", kind="deployment"
    )
    assert 1 <= failures == metric(gateway, "pickllm_reward_count", router="r", model="broken")
    if failures >= 2:
        assert metric(gateway, "pickllm_breaker_state", router="r", model="broken") == 2
    # Passed through, the client reads a failure of the gateway's upstream, not of its own key.
    passed = post(gateway, chat("broken"))
    assert passed.status_code == 502
    secrets_absent(passed.text)


# ------------------------------------------------------------------ the budget is a hard cap


BUDGET = (
    models("UPSTREAM", cheap="cheap")
    + """
[routers.r]
models = ["cheap"]
budget = { total = BUDGET }
"""
)


def budget_config(upstream: str, total: float) -> str:
    return SERVER + BUDGET.replace("UPSTREAM", upstream).replace("BUDGET", repr(total))


@pytest.fixture(scope="module")
def checked(upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """One gateway for the tests of what is checked before paying (each asserts on what its
    own requests did, so they may share it)."""
    folder = tmp_path_factory.mktemp("checked")
    path = folder / "pickllm.toml"
    path.write_text(budget_config(upstream, 1.0))
    port = free_port()
    log = folder / "serve.log"
    process = start(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(path), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        log,
        {"PICKLLM_TEST_KEY": KEY, **ENV},
    )
    gateway = Process(f"http://127.0.0.1:{port}", process, log)
    yield gateway
    assert "Traceback" not in gateway.stop()


def post_raw(gateway: Process, body: bytes) -> httpx.Response:
    """POST bytes as given (json.dumps escapes a lone surrogate, which httpx's encoder refuses)."""
    return httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        timeout=60,
    )


#: Values of the fields that multiply a call's cost, each refused with a 400.
BAD_COST_FIELDS = [
    ("n", 100),
    ("n", "2"),
    ("n", 1.5),
    ("n", True),
    ("n", 0),
    ("best_of", 50),
    ("max_tokens", "100000"),
    ("max_tokens", 5.0),
    ("max_tokens", False),
    ("max_tokens", -1),
    ("max_completion_tokens", "100000"),
    ("max_completion_tokens", 1e9),
    ("max_completion_tokens", [1]),
]


def test_cost_fields_are_checked_before_paying(checked: Process, upstream: str) -> None:
    before = upstream_stats(upstream)["requests"]
    with client(checked) as sdk:
        for field, value in BAD_COST_FIELDS:
            with pytest.raises(openai.BadRequestError) as refused:
                sdk.chat.completions.create(**chat(), extra_body={field: value})
            assert refused.value.response.json()["error"]["param"] in (field, "n")
    assert upstream_stats(upstream)["requests"] == before


def test_n_counts_in_the_worst_case_reservation(serve: Serve, upstream: str) -> None:
    """The budget fits one choice's worst case but not four: n=4 is refused, unpaid."""
    prompt_bytes = len(json.dumps(chat(n=4)).encode())
    # worst case (budget.py): (bytes + 16 per message) at 1 USD/M in, 100 tokens/choice at 2.
    one = ((prompt_bytes + 16) * 1.0 + 100 * 2.0) / 1e6
    gateway = serve(budget_config(upstream, 2 * one), env=ENV)
    before = upstream_stats(upstream)["requests"]
    refused = post(gateway, chat(n=4))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert upstream_stats(upstream)["requests"] == before
    assert post(gateway, chat(n=1)).status_code == 200


def test_null_max_tokens_means_the_default(checked: Process) -> None:
    assert post(checked, chat(max_tokens=None, n=None)).status_code == 200


# ------------------------------------------------------------------ validate before paying


#: Contexts that cannot go back in the x-pickllm-context header, or are out of bounds.
BAD_CONTEXTS = [
    "snow \u2603",
    "a\r\nb",
    "a\nx-evil: 1",
    "nul\x00",
    "\ud800",
    "tab\t",
    "x" * 257,
    "",
]

#: Bodies the gateway must refuse with a 400 (never a 500), before any upstream call.
BAD_BODIES = [
    b'{"model": "r", "messages": [{"role": "user", "content": "hi"}], "x": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    b'{"model": "r", "messages": [{"role": "user", "content": '
    + b'{"a":' * 100
    + b"1"
    + b"}" * 100
    + b"}]}",
    b'{"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream": true, '
    b'"stream_options": {"include_usage": "yes"}}',
    b'{"model": "r", "messages": [{"role": "user", "content": "hi"}], "stream_options": 3}',
]


def test_contexts_that_cannot_go_back_in_a_header_are_400(checked: Process, upstream: str) -> None:
    before = upstream_stats(upstream)["requests"]
    for context in BAD_CONTEXTS:
        response = post_raw(checked, json.dumps(chat(pickllm_context=context)).encode())
        assert response.status_code == 400, context
        assert response.json()["error"]["param"] == "pickllm_context"
    assert upstream_stats(upstream)["requests"] == before
    latin = post_raw(checked, json.dumps(chat(pickllm_context="caf\xe9")).encode())
    assert latin.status_code == 200
    assert latin.headers["x-pickllm-context"].encode("latin-1") == b"caf\xe9"


def test_bad_bodies_are_400_never_500(checked: Process, upstream: str) -> None:
    before = upstream_stats(upstream)["requests"]
    for body in BAD_BODIES:
        response = post_raw(checked, body)
        assert response.status_code == 400, body[:80]
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert upstream_stats(upstream)["requests"] == before


# ------------------------------------------------------------------ feedback bound to its caller


def test_feedback_is_bound_to_the_key_that_decided(serve: Serve, upstream: str) -> None:
    gateway = serve(budget_config(upstream, 1.0), env=ENV)
    ids = [post(gateway, chat()).headers["x-pickllm-decision"] for _ in range(3)]
    assert all(DECISION_ID.match(gid) for gid in ids)
    assert len({gid.rsplit("-", 1)[1] for gid in ids}) == 3  # random parts, not a counter

    def feedback(gid: str, key: str) -> httpx.Response:
        return post(gateway, {"decision": gid, "accuracy": 1.0}, key, "/v1/feedback")

    stolen = feedback(ids[0], OTHER_KEY)
    assert stolen.status_code == 404  # as for an id never issued: nothing learned about it
    assert stolen.json()["error"]["code"] == "unknown_decision"
    assert feedback(ids[0], KEY).status_code == 200
    assert feedback(ids[0], OTHER_KEY).status_code == 404  # not even its state is told
    assert feedback(ids[1], ADMIN_KEY).status_code == 200  # an admin key settles any
    assert metric(gateway, "pickllm_feedback_settled_total", outcome="feedback") == 2


#: Decision ids not of the one accepted shape: holding a path, too short, upper-case hex.
BAD_IDS = [
    "dec-../../../tmp/x-AAAAAAAAAAAAAAAAAAAAAA",
    "dec-0123456789ab-AAAAAAAAAAAAAAAAAAAAAA/../x",
    "dec-0123456789ab-1",
    "/tmp/pickllm.sock",
    "dec-0123456789AB-AAAAAAAAAAAAAAAAAAAAAA",
]


def test_malformed_decision_ids_are_400_before_anything(checked: Process) -> None:
    for gid in BAD_IDS:
        response = post(checked, {"decision": gid, "accuracy": 1.0}, path="/v1/feedback")
        assert response.status_code == 400, gid
        assert response.json()["error"]["param"] == "decision"


def test_workers_hand_off_only_to_their_own_sockets(
    serve: Serve, upstream: str, tmp_path: Path
) -> None:
    """Two workers: an id naming no worker is a 404 at once (no path followed, no hang); a
    decision made by one key cannot be settled by another through either worker."""
    gateway = serve(budget_config(upstream, 1.0), workers=2, env=ENV)
    forged = "dec-0123456789ab-" + "A" * 22
    for _ in range(4):
        response = post(gateway, {"decision": forged, "accuracy": 1.0}, path="/v1/feedback")
        assert response.status_code == 404
    ids = [post(gateway, chat()).headers["x-pickllm-decision"] for _ in range(8)]
    for gid in ids:
        stolen = post(gateway, {"decision": gid, "accuracy": 1.0}, OTHER_KEY, "/v1/feedback")
        assert stolen.status_code == 404
        assert post(gateway, {"decision": gid, "accuracy": 1.0}, path="/v1/feedback").is_success
    assert metric(gateway, "pickllm_feedback_settled_total", outcome="feedback") == 8


# ------------------------------------------------------------------ old library bugs


@pytest.mark.parametrize("stream", [False, True])
def test_absurd_usage_is_the_models_failure_settled_once(
    serve: Serve, upstream: str, stream: bool
) -> None:
    """Usage of 10**400 tokens: the answer is malformed, the model blamed once, and the
    decision and its reservation settled once: the budget spent is exactly the good answers'."""
    config = SERVER + models(upstream, huge="huge-usage", fine="fine")
    config += """
[routers.r]
models = ["huge", "fine"]
seed = 1
breaker = false
budget = { total = 1.0 }
"""
    gateway = serve(config, env=ENV)
    answered = 0
    with client(gateway) as sdk:
        for _ in range(8):
            if not stream:  # a failure before the first byte: the other model answers
                raw = sdk.chat.completions.with_raw_response.create(**chat())
                answered += raw.headers["x-pickllm-model"] == "fine"
                continue
            # A failure at the stream's end (usage comes last): reported in the stream.
            with sdk.chat.completions.with_streaming_response.create(**chat(), stream=True) as raw:
                text = raw.read().decode()
            if raw.headers["x-pickllm-model"] == "fine":
                assert text.endswith("data: [DONE]\n\n")
                answered += 1
            else:
                assert '"code": "upstream_stream_broken"' in text
    huge = metric(gateway, "pickllm_upstream_failures_total", model="huge", kind="malformed")
    assert huge >= 1
    assert answered == (8 - huge if stream else 8)
    assert metric(gateway, "pickllm_reward_count", router="r", model="huge") == huge
    assert metric(gateway, "pickllm_pending_feedback", router="r") == answered  # not leaked
    spent = metric(gateway, "pickllm_budget_spent_usd", router="r")
    if not stream:
        # each good answer: 10 prompt tokens at 1 USD/M, 5 answer tokens at 2 USD/M
        assert spent == pytest.approx(answered * (10 * 1.0 + 5 * 2.0) / 1e6)
    else:  # a broken stream costs what it streamed (estimated), far below the budget
        assert 0.0 < spent < 1.0


# ------------------------------------------------------------------ slow clients


def flood(send: Send, request: dict[str, Any]) -> None:
    """A stream far larger than every socket buffer between the gateway and its client, then
    silence: a client that stops reading leaves the gateway waiting to send, not to receive."""
    send(http_headers(content_type="text/event-stream", Connection="close"))
    event = json.dumps(
        {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "x" * 60_000}}]}
    ).encode()
    for _ in range(FLOOD_EVENTS):
        send(b"data: " + event + b"\n\n")
    while True:
        time.sleep(0.05)
        send(b": still here\n\n")


def _buffer_bound() -> int:
    """The most the kernel may buffer on one loopback connection, both ends (tcp_wmem and
    tcp_rmem maxima), plus uvicorn's 64 KiB write buffer."""
    total = 65536
    for name in ("tcp_wmem", "tcp_rmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, ValueError, IndexError):
            total += 64 * 1024 * 1024
    return total


#: Four times every buffer's bound, in 60 kB events.
FLOOD_EVENTS = 4 * _buffer_bound() // 60_000 + 1


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with hostile_server({"flood": flood}) as server:
        yield server


def test_a_client_that_stops_reading_is_cut_at_the_deadline(
    serve: Serve, hostile: HostileServer, upstream: str
) -> None:
    """The deadline covers sending too: the stream is cut, its decision settled as cancelled,
    the reservation released (the next request fits the budget), and no model is blamed."""
    config = (
        SERVER
        + models(hostile.url, flooding="flood")
        + f"""
[routers.r]
models = ["flooding"]
deadline = 2.0
max_response_bytes = {8 * FLOOD_EVENTS * 60_000}
budget = {{ total = 0.00125 }}
"""
    )
    # worst case of one request: about 230 bytes at 1 USD/M + 100 tokens at 2 USD/M = 0.00043;
    # the budget fits two, so one reservation held forever would not block the next request.
    gateway = serve(config.replace("output_price = 2.0", "output_price = 0.0"), env=ENV)
    body = json.dumps(chat(stream=True)).encode()
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])))
    slow.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    # Never read: the gateway fills every buffer, then waits on the client until the deadline.
    wait_for(
        lambda: metric(gateway, "pickllm_feedback_settled_total", outcome="cancelled") == 1,
        "the deadline to cut the slow reader",
    )
    slow.close()
    assert metric(gateway, "pickllm_upstream_failures_total", model="flooding") == 0
    assert metric(gateway, "pickllm_breaker_state", router="r", model="flooding") == 0
    assert metric(gateway, "pickllm_reward_count", router="r") == 0
    assert "too slowly" in gateway.stop()


def read_answer(conn: socket.socket) -> bytes:
    """An HTTP answer read off a raw socket: its head, then its body (an OpenAI-style error
    body ends with "}}"), or whatever came before the connection closed."""
    conn.settimeout(WAIT_S)
    answer = b""
    while b"}}" not in answer and (chunk := conn.recv(65536)):
        answer += chunk
    conn.close()
    return answer


def _half_sent(gateway: Process) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])))
    conn.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
    return conn


def test_half_sent_headers_are_dropped_before_authentication(serve: Serve, upstream: str) -> None:
    gateway = serve(
        SERVER.replace("[server]", "[server]\nheader_timeout = 0.2") + models(upstream, m="m"),
        env=ENV,
    )
    conn = _half_sent(gateway)
    conn.settimeout(WAIT_S)
    assert conn.recv(1024) == b""  # closed by the gateway, nothing answered
    conn.close()


def test_a_slow_body_is_408(serve: Serve, upstream: str) -> None:
    gateway = serve(
        SERVER.replace("[server]", "[server]\nbody_timeout = 0.2") + models(upstream, m="m"),
        env=ENV,
    )
    conn = socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1])))
    conn.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {KEY}\r\nContent-Length: 1000\r\n\r\n{{".encode()
    )
    answer = read_answer(conn)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"request_timeout" in answer


def test_connections_beyond_the_cap_get_the_gateways_503(serve: Serve, upstream: str) -> None:
    """max_connections half-sent requests hold a worker's every slot: the next client (the SDK)
    gets a 503 of the gateway's own and no model is blamed; once they go, it is served."""
    cap = 20
    config = SERVER.replace("[server]", f"[server]\nmax_connections = {cap}")
    gateway = serve(config + models(upstream, m="m"), env=ENV)
    idle = [_half_sent(gateway) for _ in range(cap)]
    try:
        with client(gateway) as sdk, pytest.raises(openai.InternalServerError) as refused:
            sdk.chat.completions.create(**chat("m"))
        assert refused.value.status_code == 503
        assert refused.value.response.json()["error"]["code"] == "gateway_overloaded"
    finally:
        for conn in idle:
            conn.close()

    def served() -> bool:
        return post(gateway, chat("m")).status_code == 200

    wait_for(served, "the gateway to serve again")
    assert metric(gateway, "pickllm_upstream_failures_total", model="m") == 0


def test_out_of_file_descriptors_is_not_the_models_failure(
    serve: Serve, upstream: str, tmp_path: Path
) -> None:
    """The worker runs out of descriptors (idle connections took them all, beyond the cap's
    protection): the request that needs an upstream socket gets a 503 and no model is blamed."""
    config = SERVER.replace("[server]", "[server]\nheader_timeout = 600")
    config += models(upstream, m="m") + '[routers.r]\nmodels = ["m"]\nbreaker = { failures = 1 }\n'
    path = tmp_path / "fd.toml"
    path.write_text(config)
    port = free_port()
    launcher = (
        "import resource, sys, runpy; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
        "sys.argv = ['pickllm'] + sys.argv[1:]; runpy.run_module('pickllm', run_name='__main__')"
    )
    log = tmp_path / "fd.log"
    process = start(
        [sys.executable, "-c", launcher, "serve", "--config", str(path), "--port", str(port)],
        f"http://127.0.0.1:{port}/readyz",
        log,
        {"PICKLLM_TEST_KEY": KEY, **ENV},
    )
    gateway = Process(f"http://127.0.0.1:{port}", process, log)
    held: list[socket.socket] = []
    try:
        body = json.dumps(chat()).encode()
        first = socket.create_connection(("127.0.0.1", port))
        first.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        # Take every descriptor the worker has left (the limit is 256: 400 connections are more
        # than enough), and wait until the worker says it has none left: uvloop then drops
        # the connections it cannot keep, asyncio logs the failed accept.
        for _ in range(400):
            held.append(_half_sent(gateway))

        def exhausted() -> bool:
            if "Too many open files" in log.read_text(errors="replace"):
                return True
            readable, _, _ = select.select(held, [], [], 0)
            for conn in readable:
                try:
                    if conn.recv(1, socket.MSG_PEEK) == b"":
                        return True
                except ConnectionResetError:
                    return True
            return False

        wait_for(exhausted, "the worker to run out of descriptors")
        first.sendall(body)
        answer = read_answer(first)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"gateway_overloaded" in answer
    finally:
        for conn in held:
            conn.close()

    wait_for(lambda: post(gateway, chat()).status_code == 200, "the gateway to serve again")
    assert metric(gateway, "pickllm_upstream_failures_total", model="m") == 0
    assert metric(gateway, "pickllm_breaker_state", router="r", model="m") == 0
    assert metric(gateway, "pickllm_gateway_overloaded_total") == 1
    gateway.stop()


# ------------------------------------------------------------------ safe by default


def test_an_open_host_without_keys_is_refused(tmp_path: Path, upstream: str) -> None:
    path = tmp_path / "open.toml"
    path.write_text(models(upstream, m="m").replace('api_key = "env:PROVIDER_KEY"\n', ""))
    for host in ("0.0.0.0", "::", "192.0.2.1", "gateway.example"):
        with pytest.raises(ConfigError, match="allow_anonymous"):
            serve_gateway(path, host=host, port=free_port(), workers=1)
    # And from the command line, as an operator would meet it:
    result = subprocess.run(
        [sys.executable, "-m", "pickllm", "serve", "--config", str(path), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "allow_anonymous" in result.stderr


def test_metrics_show_no_context_by_default(checked: Process) -> None:
    before = metric(checked, "pickllm_decisions_total", context="_other")
    assert post(checked, chat(pickllm_context="tenant-acme-secret")).status_code == 200
    assert "tenant-acme-secret" not in httpx.get(f"{checked.url}/metrics").text
    assert metric(checked, "pickllm_decisions_total", context="_other") == before + 1


def test_a_judge_keeps_no_more_than_max_kept_bytes(serve: Serve, upstream: str) -> None:
    """A question larger than max_kept_bytes is not kept: its decision gets the default
    accuracy (0.5), not the judge's 9/10, and the judge is never called."""
    config = (
        SERVER
        + models(upstream, m="m", judge="judge-9")
        + """
[routers.r]
models = ["m"]
feedback_timeout = 0.05
default_accuracy = 0.5
reward = { accuracy = 1.0, cost = 0.0, latency = 0.0 }
judge = { model = "judge", max_kept_bytes = 1000 }
"""
    )
    gateway = serve(config, env=ENV)
    before = upstream_stats(upstream)["requests"]
    big = {"model": "r", "messages": [{"role": "user", "content": "q" * 2000}]}
    assert post(gateway, big).status_code == 200
    wait_for(
        lambda: metric(gateway, "pickllm_feedback_settled_total", outcome="expired") == 1,
        "the decision to expire",
    )
    assert metric(gateway, "pickllm_reward_sum", router="r") == pytest.approx(0.5)
    assert upstream_stats(upstream)["requests"] == before + 1  # the answer only, no judge call
