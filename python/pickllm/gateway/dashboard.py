"""``GET /v1/stats``, the decision explorer's ``GET /v1/decisions`` and the dashboard ``GET /ui``
(plain HTML, CSS and JavaScript in ``static/``, served from the package: no CDN, no build step).

Both take the gateway's API keys: as ``Authorization: Bearer <key>``, or, so that a browser can
open the page, as HTTP Basic credentials whose password is a key (any user name): the page
answers 401 with a ``WWW-Authenticate: Basic`` challenge, the browser asks for the key and sends
it again with the page's own requests to ``/v1/stats``. ``[server] ui = false`` turns the page
off (``/v1/stats`` stays).
"""

from __future__ import annotations

import base64
import binascii
from importlib import resources
from typing import TYPE_CHECKING, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pickllm.gateway.decisions import DECISIONS_VERSION, MAX_LIMIT
from pickllm.gateway.errors import APIError, UnknownDecisionError
from pickllm.gateway.feedback import DECISION_ID
from pickllm.gateway.merge import merge_snapshots

if TYPE_CHECKING:
    from pickllm.gateway.app import Gateway

__all__ = ["dashboard_routes"]

#: The page's files, by the name they are served under, with their media types.
_ASSETS: Final = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Everything the page loads comes from the gateway itself; no inline script, no frames.
_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_CHALLENGE: Final = {"WWW-Authenticate": 'Basic realm="pickllm", charset="UTF-8"'}


def _read(name: str) -> bytes:
    return resources.files("pickllm.gateway").joinpath("static", name).read_bytes()


def _basic_password(request: Request) -> bytes | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded.partition(b":")[2]


def _principal(gateway: Gateway, request: Request) -> str | None:
    """Who calls, by a Bearer key (the gateway's own check) or by Basic credentials whose
    password is a key; None when neither is valid."""
    password = _basic_password(request)
    if password is None:
        try:
            return gateway.authorize(request)
        except APIError:
            return None
    if not gateway.keys:
        return gateway.authorize(request)
    return gateway.keys.match(password)


def _authorized(gateway: Gateway, request: Request) -> bool:
    return _principal(gateway, request) is not None


def _caller(gateway: Gateway, request: Request) -> str:
    principal = _principal(gateway, request)
    if principal is None:
        raise APIError(
            "missing or invalid API key (send Authorization: Bearer <key>)",
            status=401,
            code="invalid_api_key",
        )
    return principal


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise APIError(f"'limit' must be an integer from 1 to {MAX_LIMIT}", param="limit")
    return int(raw)


def dashboard_routes(gateway: Gateway) -> list[Route]:
    """The routes of ``/v1/stats`` and, unless ``[server] ui = false``, of ``/ui``."""
    page = _read("index.html")
    assets = {name: _read(name) for name in _ASSETS}

    async def stats(request: Request) -> Response:
        _caller(gateway, request)
        router = request.query_params.get("router")
        context = request.query_params.get("context")
        if router is not None and router not in gateway.routers:
            raise APIError(f"no router {router!r}", status=404, param="router")
        if context is not None and router is None:
            raise APIError("'context' needs 'router'", param="context")
        if gateway.peers is None:
            body = gateway.stats.snapshot(gateway, router=router, context=context)
            return JSONResponse(body | {"worker": gateway.worker_info([])})
        mine = gateway.stats.snapshot(gateway, router=router, context=context, raw=True)
        question = {"op": "stats", "router": router, "context": context}
        answers, missing = await gateway.peers.ask_all(question)
        body = merge_snapshots({gateway.token: mine, **answers}, one_context=context is not None)
        return JSONResponse(body | {"worker": gateway.worker_info(list(answers), missing)})

    async def decision(request: Request) -> Response:
        principal = _caller(gateway, request)
        gid = request.path_params["id"]
        match = DECISION_ID.match(gid)
        found = None
        if match is not None and (match.group(1) == gateway.token or gateway.peers is None):
            found = gateway.decisions.get(gid, principal)
        elif match is not None and gateway.peers is not None:
            question = {"op": "decision", "decision": gid, "principal": principal}
            try:
                found = await gateway.peers.ask(match.group(1), question)
            except FileNotFoundError:
                found = None  # no such worker (any more)
            except (OSError, TimeoutError, ValueError) as error:
                raise APIError(
                    "the worker that made this decision did not answer; try again later",
                    status=503,
                    type="server_error",
                    code="worker_unavailable",
                ) from error
        if found is None:  # never issued, forgotten, or another key's: the same answer
            raise UnknownDecisionError(f"unknown decision {gid[:80]!r}")
        return JSONResponse({"version": DECISIONS_VERSION, "decision": found})

    async def decisions(request: Request) -> Response:
        principal = _caller(gateway, request)
        router = request.query_params.get("router")
        context = request.query_params.get("context")
        if router is not None and router not in gateway.routers:
            raise APIError(f"no router {router!r}", status=404, param="router")
        limit = _limit(request)
        found = gateway.decisions.recent(principal, router=router, context=context, limit=limit)
        answered: list[str] = []
        missing: list[str] = []
        if gateway.peers is not None:
            question = {
                "op": "decisions",
                "principal": principal,
                "router": router,
                "context": context,
                "limit": limit,
            }
            answers, missing = await gateway.peers.ask_all(question)
            answered = list(answers)
            found = [d for listed in [found, *answers.values()] for d in listed]
            found = sorted(found, key=lambda d: d["time"], reverse=True)[:limit]
        return JSONResponse(
            {
                "version": DECISIONS_VERSION,
                "decisions": found,
                "worker": gateway.worker_info(answered, missing),
            }
        )

    async def ui(request: Request) -> Response:
        if not _authorized(gateway, request):
            return Response(
                b"the dashboard needs an API key (the password of the login prompt)",
                status_code=401,
                headers=_CHALLENGE | _HEADERS,
                media_type="text/plain",
            )
        return Response(page, headers=_HEADERS, media_type="text/html; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return Response(b"not found", status_code=404, media_type="text/plain")
        if not _authorized(gateway, request):
            return Response(b"", status_code=401, headers=_CHALLENGE | _HEADERS)
        return Response(assets[name], headers=_HEADERS, media_type=_ASSETS[name])

    routes = [
        Route("/v1/stats", stats, methods=["GET"]),
        Route("/v1/decisions", decisions, methods=["GET"]),
        Route("/v1/decisions/{id}", decision, methods=["GET"]),
    ]
    if gateway.config.server.ui:
        routes += [
            Route("/ui", ui, methods=["GET"]),
            Route("/ui/{name}", asset, methods=["GET"]),
        ]
    return routes
