"""The dashboard's endpoints. The page (`/dashboard`) and its assets hold no data and need no key; every data
endpoint needs the admin key, which the page asks for and keeps in the tab's sessionStorage only (gone when the
tab closes, never in a URL, a cookie or a log). The page reads `/v1/dashboard/*`, the existing outcome endpoints
(`/v1/router/outcomes`) and `/v1/route`, all with that key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from turnout.errors import TurnoutError
from turnout.jsonutil import dumps
from turnout.pipeline import Router
from turnout.server.dashboard.board import REFRESH_S, Board
from turnout.server.dashboard.config_view import config_view
from turnout.server.exchange import request_headers
from turnout.server.sse import EventStreamResponse

router = APIRouter()

STATIC = "turnout.server.dashboard"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8", ".txt": "text/plain; charset=utf-8", "": "text/plain; charset=utf-8"}
# Nothing but this origin: no CDN can be used by accident (the browser refuses it), no inline script runs.
SECURITY = {"content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' "
                                       "data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
                                       "frame-ancestors 'none'",
            "x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer",
            "cache-control": "no-cache"}

STREAM_S = 15.0  # how long one event stream lasts (see dashboard_events)

_assets: dict[str, bytes] | None = None


def _read_assets() -> dict[str, bytes]:
    """Every file under static/, by its path there: only these can be served (no path from the URL is opened)."""
    found: dict[str, bytes] = {}

    def walk(node: Any, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, name + "/")
            elif not child.name.startswith("."):
                found[name] = child.read_bytes()

    walk(resources.files(STATIC).joinpath("static"), "")
    return found


async def _asset(name: str) -> bytes | None:
    global _assets
    if _assets is None:
        _assets = await asyncio.to_thread(_read_assets)  # once, off the event loop
    return _assets.get(name)


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > name.rfind("/") else ""


async def _file(name: str) -> Response:
    body = await _asset(name)
    if body is None:
        raise TurnoutError(f"no dashboard asset '{name[:100]}'", status=404, type="invalid_request_error",
                           code="not_found")
    return Response(body, media_type=TYPES.get(_suffix(name), "application/octet-stream"), headers=SECURITY)


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page():
    return await _file("index.html")


@router.get("/dashboard/static/{name:path}", include_in_schema=False)
async def dashboard_asset(name: str):
    return await _file(name)


def _admin(request: Request) -> Router:
    current: Router = request.app.state.holder.router
    current.access.require_admin(request_headers(request))
    return current


def board(request: Request) -> Board:
    state = request.app.state
    found = getattr(state, "dashboard", None)
    if found is None:
        found = state.dashboard = Board(state.holder)
    return found


@router.get("/v1/dashboard/summary")
async def dashboard_summary(request: Request):
    """Admin: the live summary (requests, models, cost against the baseline, cache, errors, breakers, budgets,
    config generation, a rate series); see docs/dashboard.md. The same object /v1/dashboard/events streams."""
    _admin(request)
    return Response(dumps(await board(request).summary()), media_type="application/json")


# Not in /openapi.json: OpenAPI has no way to say "a stream of events", and a schema-driven client or fuzzer
# reading it as one JSON body would wait out the whole stream. docs/dashboard.md describes it.
@router.get("/v1/dashboard/events", include_in_schema=False)
async def dashboard_events(request: Request):
    """Admin: Server-Sent Events, one `summary` event a second (its data: the summary object). The key is
    checked again before each event, so a reload that changes the admin key ends open streams. A stream ends
    after STREAM_S and the client reconnects: on SIGTERM uvicorn waits for open responses, and a stream that
    never ended would hold every shutdown of a watched server to its whole grace period."""
    _admin(request)
    headers, shared = request_headers(request), board(request)

    async def events() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"  # an EventSource client reconnects a second after the stream ends
        ends = time.monotonic() + STREAM_S
        while time.monotonic() < ends:
            try:
                request.app.state.holder.router.access.require_admin(headers)
            except TurnoutError as exc:
                yield b"event: error\ndata: " + dumps({"error": {"message": exc.message, "code": exc.code}}) + b"\n\n"
                return
            yield b"event: summary\ndata: " + dumps(await shared.summary()) + b"\n\n"
            await asyncio.sleep(REFRESH_S)

    return EventStreamResponse(events(), media_type="text/event-stream",
                               headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


@router.get("/v1/dashboard/config")
async def dashboard_config(request: Request):
    """Admin: the decisions as a table (priority order, rules written out, models, algorithm, plan, plugins),
    the models with their prices, and `turnout validate`'s warnings."""
    current = _admin(request)
    return JSONResponse(config_view(current) | {"generation": request.app.state.holder.generation})
