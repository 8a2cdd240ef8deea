"""The HTTP endpoints. Handlers stay thin: parse, route, call, shape the response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from turnout import __version__
from turnout.config import Config
from turnout.doors import Door
from turnout.doors.chat import ChatDoor
from turnout.errors import InvalidRequestError, ModelNotFoundError, TurnoutError
from turnout.pipeline import Router
from turnout.plugins.semantic_cache import cache_stores
from turnout.server import metrics
from turnout.server.exchange import Exchange, request_headers
from turnout.state.cache import StoreUnavailable

router = APIRouter()

CHAT = ChatDoor()


def door_endpoint(door: Door):
    """The Starlette endpoint of a door's routed requests: one Exchange each."""

    async def endpoint(request: Request) -> Response:
        return await Exchange(request.app.state.holder.router, door, request).serve()

    endpoint.__name__ = f"{door.name}_endpoint"
    return endpoint


@router.delete("/v1/cache")
@router.delete("/v1/cache/{key}")
async def forget_cached(request: Request, key: str | None = None):
    """Admin: forget one cached answer (its key is the x-turnout-cache-key response header) or, with ?all=true,
    every answer of every semantic cache in the config. A memory store is this worker's only."""
    current: Router = request.app.state.holder.router
    current.access.require_admin(request_headers(request))
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


@router.post("/v1/route", openapi_extra=ChatDoor.openapi)
async def explain_route(request: Request):
    """Dry run: the routing explanation for a request body; no backend is called."""
    current: Router = request.app.state.holder.router
    headers = request_headers(request)
    current.access.require_admin(headers)
    exchange = Exchange(current, CHAT, request)
    ctx = await exchange.context()
    route = exchange.route = await current.route(ctx, pin=False)  # a dry run pins no session
    return JSONResponse(route.explanation(ctx), headers=exchange.route_headers())


def _guard(request: Request, endpoint: str) -> None:
    """Endpoints open by default (probes, scrapes, model lists) need a key where `auth.protect` names them."""
    current: Router = request.app.state.holder.router
    auth = current.config.auth
    if auth is None or endpoint not in auth.protect:
        return
    headers = request_headers(request)
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


def _model_objects(config: Config) -> dict[str, dict[str, Any]]:
    """What /v1/models lists, by id: the aliases, and (with allow_direct) every model, embeddings ones marked."""
    objects = {alias: {"id": alias, "object": "model", "created": 0, "owned_by": "turnout",
                       "turnout": {"kind": "alias"}} for alias in config.routing.aliases}
    if config.routing.allow_direct:
        for name, m in config.models.items():
            about = {"kind": "embeddings" if m.embeddings else "model", "upstream_model": m.model or name}
            if m.embeddings:
                about["embeddings"] = True
            objects[name] = {"id": name, "object": "model", "created": 0, "owned_by": m.provider, "turnout": about}
    return objects


@router.get("/v1/models")
@router.get("/models", include_in_schema=False)
async def list_models(request: Request):
    _guard(request, "models")
    current: Router = request.app.state.holder.router
    return {"object": "list", "data": list(_model_objects(current.config).values())}


@router.get("/v1/models/{model_id:path}")
@router.get("/models/{model_id:path}", include_in_schema=False)
async def retrieve_model(request: Request, model_id: str):
    """One entry of the list (ids may hold slashes: "meta-llama/Llama-3.1-8B")."""
    _guard(request, "models")
    current: Router = request.app.state.holder.router
    found = _model_objects(current.config).get(model_id)
    if found is None:
        raise ModelNotFoundError(f"The model '{model_id}' does not exist here", param="model")
    return found


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
