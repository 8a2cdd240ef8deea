"""The HTTP endpoints. Handlers stay thin: parse, route, call, shape the response."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from turnout import __version__
from turnout.context import RoutingContext
from turnout.jsonutil import dumps, loads
from turnout.errors import InvalidRequestError, TurnoutError, UpstreamError
from turnout.pipeline import Route, Router
from turnout.server.schemas import ChatCompletionRequest, check_chat_request
from turnout.server.sse import relay

log = logging.getLogger("turnout.request")
router = APIRouter()

_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


async def read_json(request: Request, limit: int) -> Any:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise TurnoutError(f"request body exceeds {limit} bytes", status=413, type="invalid_request_error",
                           code="request_too_large")
    raw = await request.body()
    if len(raw) > limit:
        raise TurnoutError(f"request body exceeds {limit} bytes", status=413, type="invalid_request_error",
                           code="request_too_large")
    try:
        return loads(raw)
    except ValueError as exc:
        reason = "not valid UTF-8" if "utf-8" in str(exc).lower() else "not valid JSON"
        where = f" at line {exc.lineno}, column {exc.colno}" if getattr(exc, "lineno", None) else ""
        raise InvalidRequestError(f"the request body is {reason}{where}", code="invalid_json") from None


async def _context(request: Request, current: Router) -> RoutingContext:
    body = await read_json(request, current.config.server.max_body_bytes)
    check_chat_request(body)
    return RoutingContext(body, headers={k.lower(): v for k, v in request.headers.items()})


def _route_headers(route: Route, ctx: RoutingContext) -> dict[str, str]:
    headers = {"x-turnout-model": route.model, "x-turnout-decision": route.decision,
               "x-turnout-request-id": ctx.request_id}
    if ctx.response_headers:  # from plugins; an empty value removes a header
        headers.update(ctx.response_headers)
        headers = {k: v for k, v in headers.items() if v}
    return headers


@router.post("/v1/chat/completions", openapi_extra=_BODY_SCHEMA)
@router.post("/chat/completions", include_in_schema=False)
async def chat_completions(request: Request):
    current: Router = request.app.state.holder.router
    current.acquire()
    handed_over = False
    start = time.perf_counter()
    try:
        ctx = await _context(request, current)
        route = await current.route(ctx)
        if ctx.stream:
            response = await _stream(current, ctx, route, start)
            handed_over = True
            return response
        result = await current.complete(ctx, route)
        headers = _route_headers(route, ctx)  # after the plugins, which may re-target or add headers
        cost = 0.0 if ctx.answered_by else current.cost_usd(route.model, result.get("usage"), ctx,
                                                            _completion_chars(result))
        headers["x-turnout-cost-usd"] = f"{cost:.8f}"
        _log(ctx, route, 200, start, cost)
        return Response(dumps(result), media_type="application/json", headers=headers)
    finally:
        if not handed_over:
            current.release()


def _completion_chars(result: dict[str, Any]) -> int:
    chars = 0
    for choice in result.get("choices") or []:
        message = (choice.get("message") or {}) if isinstance(choice, dict) else {}
        if isinstance(message.get("content"), str):
            chars += len(message["content"])
    return chars


async def _stream(current: Router, ctx: RoutingContext, route: Route, start: float):
    chunks = await current.stream(ctx, route)
    headers = _route_headers(route, ctx)
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        raise UpstreamError(f"upstream '{route.model}' returned an empty stream") from None
    usage: dict[str, Any] = {}
    completion_chars = 0

    def on_chunk(chunk: str) -> None:
        nonlocal completion_chars
        try:
            data = loads(chunk)
        except ValueError:
            return
        if isinstance(data.get("usage"), dict):
            usage.update(data["usage"])
        for choice in data.get("choices") or ():
            content = (choice.get("delta") or {}).get("content") if isinstance(choice, dict) else None
            if isinstance(content, str):
                completion_chars += len(content)

    def cost() -> float:
        return 0.0 if ctx.answered_by else current.cost_usd(route.model, usage or None, ctx, completion_chars)

    def trailer() -> str:
        return f"turnout cost_usd={cost():.8f}"

    def on_end(error: str | None) -> None:
        current.release()
        _log(ctx, route, 200 if error is None else 599, start, cost(), error)

    headers["x-turnout-cost-usd"] = "0.00000000" if ctx.answered_by else \
        f"{current.cost_usd(route.model, {'completion_tokens': 0}, ctx):.8f}"
    headers["x-turnout-cost-estimate"] = "prompt-only; the final cost is the last SSE comment"
    body = relay(first, chunks, on_chunk=on_chunk, on_end=on_end, trailer=trailer, secrets=current.secrets())
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})


def _log(ctx: RoutingContext, route: Route, status: int, start: float, cost: float, error: str | None = None) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("request_id=%s decision=%s model=%s status=%d ms=%.1f cost_usd=%.8f%s", ctx.request_id,
                 route.decision, route.model, status, (time.perf_counter() - start) * 1000, cost,
                 f" error={error}" if error else "")


@router.post("/v1/route", openapi_extra=_BODY_SCHEMA)
async def explain_route(request: Request):
    """Dry run: the routing explanation for a request body; no backend is called."""
    current: Router = request.app.state.holder.router
    ctx = await _context(request, current)
    route = await current.route(ctx)
    return JSONResponse(route.explanation(ctx), headers=_route_headers(route, ctx))


@router.get("/v1/models")
@router.get("/models", include_in_schema=False)
async def list_models(request: Request):
    current: Router = request.app.state.holder.router
    config = current.config
    data = [{"id": alias, "object": "model", "created": 0, "owned_by": "turnout", "turnout": {"kind": "alias"}}
            for alias in config.routing.aliases]
    if config.routing.allow_direct:
        data += [{"id": name, "object": "model", "created": 0, "owned_by": m.provider,
                  "turnout": {"kind": "model", "upstream_model": m.model or name}}
                 for name, m in config.models.items()]
    return {"object": "list", "data": data}


@router.get("/healthz")
async def healthz():
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(request: Request):
    holder = request.app.state.holder
    return {"status": "ready", "generation": holder.generation, "models": sorted(holder.router.backends)}
