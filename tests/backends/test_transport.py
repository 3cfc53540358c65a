"""The aiohttp transport under the async pools (backends/_transport.py), on real sockets.

Each failure a server or the network can cause is raised as the httpx exception httpx's own
transport raises for it, and so classified by the backends as before (backends/_classify.py).
Servers are asyncio servers on 127.0.0.1 in the test's own loop, scripted per test; outcomes are
asserted, never durations: where a timeout is the point, nothing else can end the call.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from pickllm.backends import OpenAICompatible
from pickllm.backends._pools import _encode_json, _shared_ssl_context
from pickllm.backends._transport import ACQUIRED, AiohttpTransport
from pickllm.backends.errors import (
    BackendConnectionError,
    BackendTimeoutError,
    DeadlineExceededError,
    LocalCongestionError,
    MalformedResponseError,
    ResponseTooLargeError,
)

pytestmark = pytest.mark.anyio

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
ANSWER = json.dumps(
    {"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}
).encode()

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """An asyncio server whose connections run ``handler``; it counts connections and ends
    every handler still running when the test leaves it."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.url = ""
        self.connections = 0
        self.requests = 0
        self.closed_by_client = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bool:
        """Read one request (head and Content-Length body); False when the client closed."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        self.requests += 1
        return True


@asynccontextmanager
async def scripted(handler_of: Callable[[Scripted], Handler]) -> AsyncIterator[Scripted]:
    state = Scripted(lambda r, w: asyncio.sleep(0))
    state.handler = handler_of(state)
    server = await asyncio.start_server(state.serve, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield state
    finally:
        for task in state.tasks:
            task.cancel()
        server.close()
        await server.wait_closed()


def head(status: int = 200, **extra: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", "Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answering(state: Scripted) -> Handler:
    """Answers every request on the connection (keep-alive)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await state.read_request(reader):
            writer.write(head(Content_Length=str(len(ANSWER))) + ANSWER)
            await writer.drain()

    return handle


def silent(state: Scripted) -> Handler:
    """Reads the request and never answers; notes when the client closes the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await state.read_request(reader)
        await reader.read()  # b"" once the client closed
        state.closed_by_client.set()

    return handle


def replying(data: bytes, *, then: str = "close") -> Callable[[Scripted], Handler]:
    """Reads the request, sends ``data``, then closes ("close"), resets ("reset") or waits
    until the client closes ("wait")."""

    def of(state: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await state.read_request(reader)
            writer.write(data)
            await writer.drain()
            if then == "reset":
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            elif then == "wait":
                await reader.read()
                state.closed_by_client.set()

        return handle

    return of


def transport(**limits: Any) -> AiohttpTransport:
    return AiohttpTransport(limits=httpx.Limits(**limits), ssl_context=_shared_ssl_context())


@asynccontextmanager
async def client(timeout: httpx.Timeout, **limits: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport(**limits), timeout=timeout) as c:
        yield c


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ------------------------------------------------------------------ error mapping


async def test_refused_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    async with client(httpx.Timeout(5.0)) as c:
        with pytest.raises(httpx.ConnectError):
            await c.post(url + "/chat/completions", content=b"{}")
    async with OpenAICompatible(url, api_key_env=None) as backend:
        with pytest.raises(BackendConnectionError, match="could not connect"):
            await backend.acomplete(MESSAGES, model="m")


async def test_a_full_accept_queue_is_a_connect_timeout() -> None:
    # A listener that never accepts, its queue filled: Linux drops further SYNs, so only the
    # connect timeout can end the call.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        try:
            async with client(httpx.Timeout(30.0, connect=0.2)) as c:
                with pytest.raises(httpx.ConnectTimeout):
                    await c.post(f"http://127.0.0.1:{port}/", content=b"{}")
        finally:
            for filler in fillers:
                filler.close()


async def test_a_silent_server_is_a_read_timeout() -> None:
    async with scripted(silent) as server, client(httpx.Timeout(30.0, read=0.2)) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.post(server.url, content=b"{}")
    async with scripted(silent) as server:
        backend = OpenAICompatible(
            server.url, api_key_env=None, timeout=httpx.Timeout(30, read=0.2)
        )
        async with backend:
            with pytest.raises(BackendTimeoutError) as caught:
                await backend.acomplete(MESSAGES, model="m")
        assert type(caught.value) is BackendTimeoutError


async def test_a_hang_up_before_the_response_is_a_remote_protocol_error() -> None:
    async with scripted(replying(b"")) as server, client(httpx.Timeout(5.0)) as c:
        with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
            await c.post(server.url, content=b"{}")
    async with scripted(replying(b"")) as server, OpenAICompatible(server.url) as backend:
        with pytest.raises(BackendConnectionError, match="connection lost before a response"):
            await backend.acomplete(MESSAGES, model="m")


async def test_a_reset_before_the_response_is_a_read_error() -> None:
    reset = replying(b"", then="reset")
    async with scripted(reset) as server, client(httpx.Timeout(5.0)) as c:
        with pytest.raises(httpx.ReadError):
            await c.post(server.url, content=b"{}")
    async with scripted(reset) as server, OpenAICompatible(server.url, api_key_env=None) as b:
        with pytest.raises(BackendConnectionError, match="connection lost before a response"):
            await b.acomplete(MESSAGES, model="m")


async def test_a_body_cut_off_is_a_malformed_response() -> None:
    cut = replying(head(Content_Length="100") + b'{"choices": [')
    async with scripted(cut) as server, client(httpx.Timeout(5.0)) as c:
        response = await c.send(c.build_request("POST", server.url, content=b"{}"), stream=True)
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError, match="not completed"):
            await response.aread()
        await response.aclose()
    async with scripted(cut) as server, OpenAICompatible(server.url, api_key_env=None) as backend:
        with pytest.raises(MalformedResponseError, match="cut off before its end"):
            await backend.acomplete(MESSAGES, model="m")


async def test_a_head_that_is_not_http_is_a_remote_protocol_error() -> None:
    async with scripted(replying(b"SMTP ready\r\n\r\n")) as server, client(httpx.Timeout(5)) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post(server.url, content=b"{}")


async def test_waiting_for_a_full_pool_is_a_pool_timeout() -> None:
    async with (
        scripted(silent) as server,
        client(httpx.Timeout(30.0, pool=0.1), max_connections=1) as c,
    ):
        held = asyncio.create_task(c.post(server.url, content=b"{}"))
        while server.requests == 0:  # the only slot is now taken
            await asyncio.sleep(0.01)
        with pytest.raises(httpx.PoolTimeout):
            await c.post(server.url, content=b"{}")
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
    assert server.connections == 1


async def test_a_deadline_passing_in_the_local_queue_blames_no_model() -> None:
    async with scripted(silent) as server:
        backend = OpenAICompatible(
            server.url, api_key_env=None, limits=httpx.Limits(max_connections=1)
        )
        async with backend:
            held = asyncio.create_task(backend.acomplete(MESSAGES, model="hold"))
            while server.requests == 0:
                await asyncio.sleep(0.01)
            with pytest.raises(LocalCongestionError) as caught:
                await backend.acomplete(MESSAGES, model="m", deadline=time.monotonic() + 0.2)
            assert not caught.value.blames_model
            held.cancel()
            with pytest.raises(asyncio.CancelledError):
                await held
        assert server.requests == 1  # the second request never left our pool


async def test_a_deadline_passing_at_the_server_blames_the_model() -> None:
    async with scripted(silent) as server, OpenAICompatible(server.url, api_key_env=None) as b:
        with pytest.raises(DeadlineExceededError) as caught:
            await b.acomplete(MESSAGES, model="m", deadline=time.monotonic() + 0.5)
        assert type(caught.value) is DeadlineExceededError
        assert caught.value.blames_model


async def test_a_deadline_passing_while_the_body_arrives_blames_the_model() -> None:
    # The head and part of the body arrive, then nothing: only the call's deadline (aiohttp's
    # total timer on our own pool) can end it, and the connection is not reused.
    stalled = replying(head(Content_Length="100") + b'{"choices": [', then="wait")
    async with scripted(stalled) as server, OpenAICompatible(server.url, api_key_env=None) as b:
        with pytest.raises(DeadlineExceededError) as caught:
            await b.acomplete(MESSAGES, model="m", deadline=time.monotonic() + 0.5)
        assert caught.value.blames_model
        await asyncio.wait_for(server.closed_by_client.wait(), 30)


def gzipped(body: bytes) -> Callable[[Scripted], Handler]:
    return replying(
        head(Content_Length=str(len(packed := gzip.compress(body))), Content_Encoding="gzip")
        + packed
    )


@pytest.mark.parametrize("pool", ["own", "injected httpx client"])
async def test_an_encoded_body_is_decoded_and_capped_after_decoding(pool: str) -> None:
    # JSON may start with any amount of whitespace: a megabyte of it compresses to a kilobyte.
    padded = b" " * 1_000_000 + ANSWER
    injected = httpx.AsyncClient() if pool != "own" else None
    for cap, body in ((None, ANSWER), (2_000_000, padded), (100_000, padded)):
        async with (
            scripted(gzipped(body)) as server,
            OpenAICompatible(server.url, api_key_env=None, async_http_client=injected) as b,
        ):
            call = b.acomplete(MESSAGES, model="m", max_response_bytes=cap)
            if cap == 100_000:  # the decoded bytes count, not the kilobyte sent
                with pytest.raises(ResponseTooLargeError):
                    await call
            else:
                assert (await call).text == "ok"
    if injected is not None:
        await injected.aclose()


# ------------------------------------------------------------------ pool, trace, cancellation


async def test_taking_a_slot_is_reported_to_the_trace_hook() -> None:
    events: list[str] = []

    async def trace(event: str, info: dict[str, Any]) -> None:
        events.append(event)

    async with scripted(answering) as server, client(httpx.Timeout(5.0)) as c:
        request = c.build_request("POST", server.url, content=b"{}", extensions={"trace": trace})
        response = await c.send(request)
    assert events == [ACQUIRED]
    assert response.json()["choices"][0]["message"]["content"] == "ok"


async def test_a_body_read_to_its_end_returns_the_connection() -> None:
    async with scripted(answering) as server, client(httpx.Timeout(5.0)) as c:
        for _ in range(3):
            assert (await c.post(server.url, content=b"{}")).status_code == 200
    assert server.connections == 1  # kept alive and reused


async def test_an_abandoned_body_closes_its_connection() -> None:
    partial = replying(head(Content_Length="100") + b'{"choices": [', then="wait")
    async with scripted(partial) as server, client(httpx.Timeout(5.0)) as c:
        response = await c.send(c.build_request("POST", server.url, content=b"{}"), stream=True)
        await response.aclose()  # the rest of the body unread: never back in the pool
        await asyncio.wait_for(server.closed_by_client.wait(), 30)


async def test_cancelling_a_stream_closes_its_connection() -> None:
    stream_head = head(Transfer_Encoding="chunked").replace(
        b"application/json", b"text/event-stream"
    )
    event = b'data: {"choices": [{"index": 0, "delta": {"content": "la"}}]}\n\n'
    chunk = b"%x\r\n%s\r\n" % (len(event), event)
    async with (
        scripted(replying(stream_head + chunk, then="wait")) as server,
        OpenAICompatible(server.url, api_key_env=None) as backend,
    ):
        call = asyncio.create_task(backend.acomplete(MESSAGES, model="m", stream=True))
        while server.requests == 0:
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await asyncio.wait_for(server.closed_by_client.wait(), 30)


# ------------------------------------------------------------------ injected clients


async def test_an_injected_async_client_is_used_as_given_and_left_open() -> None:
    seen: list[str] = []

    async def hook(request: httpx.Request) -> None:
        seen.append(str(request.url))

    async with scripted(answering) as server:
        injected = httpx.AsyncClient(event_hooks={"request": [hook]})
        backend = OpenAICompatible(server.url, api_key_env=None, async_http_client=injected)
        async with backend:
            answer = await backend.acomplete(MESSAGES, model="m")
        assert answer.text == "ok"
        assert seen == [server.url + "/chat/completions"]
        assert not injected.is_closed
        assert isinstance(injected._transport, httpx.AsyncHTTPTransport)  # not replaced
        await injected.aclose()


async def test_own_pools_send_the_headers_httpx_would() -> None:
    received: list[bytes] = []

    def recording(state: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.readuntil(b"\r\n\r\n")
            received.append(data.lower())
            length = int(data.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
            received.append(body)
            writer.write(head(Content_Length=str(len(ANSWER))) + ANSWER)
            await writer.drain()

        return handle

    async with scripted(recording) as server:
        backend = OpenAICompatible(
            server.url, api_key="sk-test-1234567890", headers={"X-Team": "a"}
        )
        async with backend:
            await backend.acomplete(MESSAGES, model="m")
    request_head, body = received
    assert request_head.startswith(b"post /chat/completions http/1.1\r\n")
    for line in (
        b"authorization: bearer sk-test-1234567890",
        b"x-team: a",
        b"content-type: application/json",
        b"user-agent: python-httpx/",
        b"accept-encoding: gzip",
    ):
        assert b"\r\n" + line in request_head
    assert json.loads(body)["messages"] == MESSAGES


def test_request_bodies_are_encoded_as_json_dumps_would() -> None:
    payload = {"model": "m", "messages": [{"role": "user", "content": 'é \u2028 "x" \n'}]}
    payload |= {"max_tokens": 5, "temperature": 0.5, "stream": True, "n": None}
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert _encode_json(payload) == expected.encode()
    with pytest.raises(ValueError, match="Out of range float"):
        _encode_json({"temperature": float("nan")})
    with pytest.raises(TypeError, match="not JSON serializable"):
        _encode_json({"content": b"bytes"})


# ------------------------------------------------------------------ trio


def test_under_trio_the_async_pool_keeps_httpx_transport(server: Any) -> None:
    """aiohttp is asyncio-only: under trio (through anyio) the async pool is httpx's own."""
    import trio

    server.queue(server.raw(ANSWER))
    backend = OpenAICompatible(server.url, api_key_env=None)

    async def main() -> tuple[str, object]:
        answer = await backend.acomplete(MESSAGES, model="m", deadline=time.monotonic() + 30)
        client = await backend._pools.async_()
        await backend.aclose()
        return answer.text, client._transport

    text, used = trio.run(main)
    assert text == "ok"
    assert isinstance(used, httpx.AsyncHTTPTransport)
    assert server.last.path == "/chat/completions"


# ------------------------------------------------------------------ proxies


def _no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


async def test_http_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines: list[bytes] = []

    def proxy(state: Scripted) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                try:
                    head_bytes = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    return
                lines.append(head_bytes.split(b"\r\n", 1)[0])
                length = int(head_bytes.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                writer.write(head(Content_Length=str(len(ANSWER))) + ANSWER)
                await writer.drain()

        return handle

    _no_proxy_environment(monkeypatch)
    target = f"http://127.0.0.1:{closed_port()}/v1/chat/completions"  # nothing listens there
    async with scripted(proxy) as server:
        monkeypatch.setenv("HTTP_PROXY", server.url)
        async with client(httpx.Timeout(5.0)) as c:
            assert (await c.post(target, content=b"{}")).status_code == 200
        assert lines == [f"POST {target} HTTP/1.1".encode()]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        async with client(httpx.Timeout(5.0)) as c:
            with pytest.raises(httpx.ConnectError):  # straight to the closed port
                await c.post(target, content=b"{}")
        assert len(lines) == 1
