"""The HTTP endpoints. Handlers stay thin: parse, route, call, shape the response."""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from turnout import __version__
from turnout.access import Reservation, usage_tokens
from turnout.context import Caller, RoutingContext, tokens_for_chars
from turnout.jsonutil import dumps, loads
from turnout.errors import InvalidRequestError, TurnoutError, UpstreamError
from turnout.pipeline import Route, Router
from turnout.plugins.semantic_cache import cache_stores
from turnout.server.body import read_json
from turnout.server.schemas import TURNOUT_FIELDS, ChatCompletionRequest, check_chat_request
from turnout.server import metrics
from turnout.server.sse import CLIENT_GONE, EventStreamResponse, relay
from turnout.state.cache import StoreUnavailable

log = logging.getLogger("turnout.request")
router = APIRouter()

_BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}


async def _context(request: Request, current: Router, caller: Caller | None = None,
                   headers: dict[str, str] | None = None) -> RoutingContext:
    server = current.config.server
    body = await read_json(request, server.max_body_bytes, server.body_timeout_s, server.max_json_depth)
    check_chat_request(body)
    messages = body.get("messages")
    limit = current.config.server.max_messages
    if isinstance(messages, list) and len(messages) > limit:
        raise InvalidRequestError(f"messages: {len(messages)} messages, more than this server takes ({limit})",
                                  param="messages", code="too_many_messages")
    controls = {name: body.pop(name) for name in TURNOUT_FIELDS if name in body}
    return RoutingContext(body, headers=_headers(request) if headers is None else headers, caller=caller or Caller(),
                          controls=controls)


def _headers(request: Request) -> dict[str, str]:
    # straight from the ASGI scope: Starlette's Headers object decodes the whole list again on each look-up
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


def _route_headers(route: Route, ctx: RoutingContext) -> dict[str, str]:
    headers = {"x-turnout-model": route.model, "x-turnout-decision": route.decision,
               "x-turnout-request-id": ctx.request_id}
    attempts = route.dispatch.attempts
    if len(attempts) > 1:
        headers["x-turnout-attempts"] = ",".join(f"{a.model}:{a.outcome}" for a in attempts)
    if ctx.response_headers:  # from plugins; an empty value removes a header
        headers.update(ctx.response_headers)
        headers = {k: v for k, v in headers.items() if v}
    return headers


CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@router.post(CHAT_PATHS[0], openapi_extra=_BODY_SCHEMA)
@router.post(CHAT_PATHS[1], include_in_schema=False)
async def chat_completions(request: Request):
    current: Router = request.app.state.holder.router
    holds_slot = False
    start = time.perf_counter()
    ctx: RoutingContext | None = None
    route: Route | None = None
    reservation: Reservation | None = None
    try:
        # Who is asking and whether they may, before their body is read: a key's slow or oversized uploads
        # then cost it alone, and a concurrency slot is only taken by a request whose body has arrived.
        request_headers = _headers(request)
        caller, key = current.access.authenticate(request_headers)
        await current.access.admit_request(key)
        ctx = await _context(request, current, caller, request_headers)
        if current.in_flight >= current.config.server.max_concurrent:
            raise TurnoutError("turnout is at its limit of concurrent requests; retry shortly", status=503,
                               type="service_unavailable", code="overloaded", headers={"retry-after": "1"})
        current.acquire()
        holds_slot = True
        route = await current.route(ctx)
        # at the dearest model the request may end on; settled below, or by the stream when it ends
        if current.access.reserves(key):
            reservation = await current.access.reserve(key, current.access.estimate(
                ctx.body, ctx.token_estimate, current.dispatcher.chain(route.model, route.fallbacks)))
        if ctx.stream:
            response = await _stream(current, ctx, route, start, reservation)
            holds_slot, reservation = False, None  # the stream releases both when it ends
            return response
        result = await current.complete(ctx, route)
        headers = _route_headers(route, ctx)  # after the plugins, which may re-target or add headers
        usage = result.get("usage") if isinstance(result.get("usage"), dict) else None
        chars = _completion_chars(result)
        cost = 0.0 if ctx.answered_by else current.cost_usd(route.model, usage, ctx, chars)
        headers["x-turnout-cost-usd"] = f"{cost:.8f}"
        tokens = 0 if ctx.answered_by else usage_tokens(usage, ctx.token_estimate + tokens_for_chars(chars))
        await current.access.settle(reservation, tokens, cost)  # a cache or plugin answer costs nothing
        _finish(ctx, route, 200, start, cost, usage)
        return Response(dumps(result), media_type="application/json", headers=headers)
    except TurnoutError as exc:
        await current.access.release(reservation)  # before the answer, so the caller's next request has it back
        _finish(ctx, route, exc.status, start, 0.0, None, exc.code)
        if ctx is not None:
            exc.headers = {**exc.headers, "x-turnout-request-id": ctx.request_id}
        raise
    finally:
        if holds_slot:
            current.release()
        current.access.settle_later(reservation)  # failed or cancelled: give the reservation back


def _completion_chars(result: dict[str, Any]) -> int:
    chars = 0
    for choice in result.get("choices") or []:
        message = (choice.get("message") or {}) if isinstance(choice, dict) else {}
        if isinstance(message.get("content"), str):
            chars += len(message["content"])
    return chars


async def _stream(current: Router, ctx: RoutingContext, route: Route, start: float, reservation: Reservation | None):
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
        spent = cost()
        status = 200 if error is None else 499 if error == CLIENT_GONE else 599
        _finish(ctx, route, status, start, spent, usage or None, error)
        tokens = 0 if ctx.answered_by else \
            usage_tokens(usage or None, ctx.token_estimate + tokens_for_chars(completion_chars))
        current.access.settle_later(reservation, tokens, spent)

    headers["x-turnout-cost-usd"] = "0.00000000" if ctx.answered_by else \
        f"{current.cost_usd(route.model, {'completion_tokens': 0}, ctx):.8f}"
    headers["x-turnout-cost-estimate"] = "prompt-only; the final cost is the last SSE comment"
    body = relay(first, chunks, on_chunk=on_chunk, on_end=on_end, trailer=trailer, secrets=current.secrets())
    return EventStreamResponse(body, media_type="text/event-stream",
                             headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})


def _finish(ctx: RoutingContext | None, route: Route | None, status: int, start: float, cost: float,
            usage: dict[str, Any] | None, error: str | None = None) -> None:
    seconds = time.perf_counter() - start
    metrics.observe(ctx, route, status, seconds, usage, cost)
    if log.isEnabledFor(logging.INFO):
        fields = {"request_id": ctx.request_id if ctx else None, "decision": route.decision if route else None,
                  "model": route.model if route else None, "status": status, "ms": round(seconds * 1000, 1),
                  "cost_usd": round(cost, 8), "error": error, "caller": ctx.caller.key_id if ctx else None,
                  "cache": ctx.response_headers.get("x-turnout-cache") if ctx else None,
                  "attempts": len(route.dispatch.attempts) if route and len(route.dispatch.attempts) > 1 else None}
        log.info("request_id=%s decision=%s model=%s status=%d ms=%.1f cost_usd=%.8f%s", fields["request_id"],
                 fields["decision"], fields["model"], status, fields["ms"], cost, f" error={error}" if error else "",
                 extra=fields)


@router.delete("/v1/cache")
@router.delete("/v1/cache/{key}")
async def forget_cached(request: Request, key: str | None = None):
    """Admin: forget one cached answer (its key is the x-turnout-cache-key response header) or, with ?all=true,
    every answer of every semantic cache in the config. A memory store is this worker's only."""
    current: Router = request.app.state.holder.router
    current.access.require_admin(_headers(request))
    stores = cache_stores(current.plugins_in_use)
    if not stores:
        raise TurnoutError("no semantic_cache is configured", status=404, type="invalid_request_error",
                           code="no_cache")
    if key is None and request.query_params.get("all", "").lower() not in ("true", "1"):
        raise InvalidRequestError("to forget every cached answer say DELETE /v1/cache?all=true; to forget one, "
                                  "DELETE /v1/cache/KEY with the x-turnout-cache-key of its response", param="all")
    try:
        deleted = sum([await (s.delete([key]) if key is not None else s.clear()) for s in stores])
    except StoreUnavailable:
        raise TurnoutError("the cache store is unavailable; nothing was deleted", status=503,
                           type="service_unavailable", code="cache_unavailable") from None
    return JSONResponse({"deleted": deleted, "stores": len(stores)})


@router.post("/v1/route", openapi_extra=_BODY_SCHEMA)
async def explain_route(request: Request):
    """Dry run: the routing explanation for a request body; no backend is called."""
    current: Router = request.app.state.holder.router
    request_headers = _headers(request)
    current.access.require_admin(request_headers)
    ctx = await _context(request, current, headers=request_headers)
    route = await current.route(ctx)
    return JSONResponse(route.explanation(ctx), headers=_route_headers(route, ctx))


def _guard(request: Request, endpoint: str) -> None:
    """Endpoints open by default (probes, scrapes, model lists) need a key where `auth.protect` names them."""
    current: Router = request.app.state.holder.router
    auth = current.config.auth
    if auth is None or endpoint not in auth.protect:
        return
    headers = _headers(request)
    if endpoint == "models":
        try:
            current.access.authenticate(headers)
            return
        except TurnoutError:
            pass  # the admin key may list models too
    current.access.require_admin(headers)


@router.get("/openapi.json", include_in_schema=False)
async def openapi_schema(request: Request):
    _guard(request, "openapi")
    return JSONResponse(request.app.openapi())


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request):
    _guard(request, "metrics")
    body, content_type = metrics.export(request.app.state.holder.router)
    return Response(body, media_type=content_type)


@router.get("/v1/models")
@router.get("/models", include_in_schema=False)
async def list_models(request: Request):
    _guard(request, "models")
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
    _guard(request, "readyz")
    holder = request.app.state.holder
    # 200 even when the file on disk was rejected: the last good config still serves, and a probe failing on
    # every replica at once (one bad file rolled out everywhere) would take the whole service down for a typo.
    # The body and turnout_config_rejected say so, for a rollout to check.
    body = {"status": "ready", "generation": holder.generation,
            "config": "rejected" if holder.rejected else "loaded", "models": sorted(holder.router.backends)}
    if holder.rejected:
        body["rejected"] = holder.rejected
    return body
