"""A local OpenAI-compatible upstream for the gateway tests and benchmarks: real HTTP, instant
answers, and scripted faults chosen by the requested model id.

Run as ``python tests/gateway/upstream.py PORT``. Model ids:

* anything else: answers ``"<model>: <last user message>"`` with token usage, streamed or not;
* ``fail-500`` / ``fail-429``: that status (429 with ``Retry-After: 30``);
* ``fail-429-date``: 429 with a ``Retry-After`` HTTP-date an hour from now;
* ``bad-request``: 400 with an OpenAI error body (the request's fault, not the model's);
* ``no-usage``: answers without ``usage`` (the gateway estimates tokens);
* ``judge-N``: answers ``Score: N/10`` (an LLM judge's verdict);
* ``echo-key-NNN``: status NNN with an error body that echoes the request's Authorization
  header, a token-shaped string and a URL with credentials (a server that leaks keys);
* ``huge-usage``: answers with usage counts of ``10**400`` tokens;
* ``hang-stream``: streams one chunk, then waits until the client goes away;
* ``broken-stream``: streams one chunk, then drops the connection.

``GET /_stats`` says how many requests arrived and how many streams a client abandoned;
``GET /_last`` returns the last request body, as received.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

from aiohttp import web

STATS = {"requests": 0, "abandoned": 0}
LAST: dict[str, Any] = {}


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-local",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    STATS["requests"] += 1
    LAST.clear()
    LAST.update(body)
    model = body["model"]
    if model == "fail-500":
        return web.json_response({"error": {"message": "boom"}}, status=500)
    if model == "fail-429":
        return web.json_response(
            {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "30"}
        )
    if model == "fail-429-date":
        later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
        return web.json_response(
            {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": later}
        )
    if model.startswith("echo-key-"):
        leak = (
            f"invalid request; you sent {request.headers.get('Authorization')}, "
            "also try sk-proj-leakedleakedleaked or http://admin:hunter2@10.0.0.1:8080/v1"
        )
        error = {"message": leak, "type": "invalid_request_error", "param": leak, "code": "x"}
        return web.json_response({"error": error}, status=int(model[9:]))
    if model == "bad-request":
        error = {
            "message": "bad 'temperature'",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": None,
        }
        return web.json_response({"error": error}, status=400)
    prompt = next((m["content"] for m in reversed(body["messages"]) if m.get("role") == "user"), "")
    # judge-N: a judge whose verdict is always N out of 10
    text = f"Score: {model[6:]}/10" if model.startswith("judge-") else f"{model}: {prompt}"
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    if not body.get("stream"):
        answer: dict[str, Any] = {
            "id": "chatcmpl-local",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }
        if model == "huge-usage":
            answer["usage"] = {"prompt_tokens": 10**400, "completion_tokens": 10**400}
        elif model != "no-usage":
            answer["usage"] = usage
        return web.json_response(answer)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_chunk(model, {"role": "assistant", "content": ""}))
    if model == "hang-stream":
        await response.write(_chunk(model, {"content": "wait"}))
        try:
            await asyncio.sleep(3600)
        finally:  # aiohttp cancels the handler when the client disconnects
            STATS["abandoned"] += 1
    if model == "broken-stream":
        await response.write(_chunk(model, {"content": "half"}))
        assert request.transport is not None
        request.transport.close()
        return response
    for word in text.split(" "):
        await response.write(_chunk(model, {"content": word + " "}))
    await response.write(_chunk(model, {}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage") and model != "no-usage":
        final = {
            "id": "chatcmpl-local",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        if model == "huge-usage":
            final["usage"] = {"prompt_tokens": 10**400, "completion_tokens": 10**400}
        await response.write(b"data: " + json.dumps(final).encode() + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def stats(request: web.Request) -> web.Response:
    return web.json_response(STATS)


async def last(request: web.Request) -> web.Response:
    return web.json_response(LAST)


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_last", last)
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        print=None,
        access_log=None,
        handler_cancellation=True,
    )
