"""The floor of a Python gateway: a bare Starlette + aiohttp pass-through of one route.

It forwards the body with ``model`` replaced and streams SSE through, nothing else (no auth,
no routing, no metrics). Run: ``python benches/gateway/floor.py PORT UPSTREAM_URL``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

UPSTREAM = sys.argv[2] + "/chat/completions"
session: aiohttp.ClientSession | None = None


async def chat(request: Request) -> Response:
    global session
    if session is None:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    body = json.loads(await request.body())
    body["model"] = "floor"
    upstream = await session.post(
        UPSTREAM, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    if not body.get("stream"):
        data = await upstream.read()
        return Response(data, status_code=upstream.status, media_type="application/json")

    async def events() -> AsyncIterator[bytes]:
        async with upstream:
            async for chunk in upstream.content.iter_any():
                yield chunk

    return StreamingResponse(events(), media_type="text/event-stream")


async def healthz(request: Request) -> Response:
    return Response("ok")


app = Starlette(
    routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/healthz", healthz),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=False, log_level="warning")
