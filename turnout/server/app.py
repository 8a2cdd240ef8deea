"""The FastAPI app: OpenAI-compatible endpoints over the Router, with hot reload."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from turnout import __version__, cpu, tracing
from turnout.config import Config
from turnout.doors import doors
from turnout.pipeline import Router
from turnout.server import dashboard, errors, heap, outcome_routes, routes
from turnout.server.holder import RouterHolder
from turnout.server.protocol import STATE_KEY, HttpLimits

log = logging.getLogger("turnout")

CONFIG_ENV = "TURNOUT_CONFIG"
SWITCH_INTERVAL_S = 0.0005


def default_config() -> Config:
    from turnout.demo import demo_config

    return demo_config()


class TurnoutApp(FastAPI):
    """FastAPI, but a POST to a door's path goes from the ASGI call straight to the door's endpoint. Around a routed
    request FastAPI's stack (five middlewares, the router's scan of every route, Starlette's wrapper of the
    endpoint with its own send wrapper) did nothing these endpoints use: each Exchange shapes its own errors.
    What the stack does on a failure is kept: an exception the endpoint raises is answered by the handler
    errors.install registered for its class, and one that none handles by the `Exception` handler, then raised
    again for uvicorn to log, as Starlette's ServerErrorMiddleware does. Other paths and methods, and an app
    served under a root_path, take the whole stack."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.door_endpoints: dict[str, Callable[[Request], Awaitable[Response]]] = {}  # path -> endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.door_endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await self._serve_door(endpoint, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _serve_door(self, endpoint: Callable[[Request], Awaitable[Response]], scope: Scope, receive: Receive,
                          send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handlers = self.exception_handlers
            handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers and c is not Exception), None)
            if handler is None:
                if Exception in handlers:
                    await (await handlers[Exception](request, exc))(scope, receive, send)
                raise
            response = await handler(request, exc)
            exc.__traceback__ = None  # (a reused exception would pile up tracebacks)
        await response(scope, receive, send)


def create_app(config_path: str | os.PathLike[str] | None = None, *, config: Config | None = None,
               watch: bool = True, settle_heap: bool = False) -> TurnoutApp:
    """Build the app. With a path the file is watched and reloaded (also on SIGHUP); with neither a path
    nor a config, the embedded demo is served. `settle_heap`: the process serves this app and nothing else, so
    its heap is kept out of the garbage collector's walks once started (turnout/server/heap.py)."""
    if config is not None:
        holder = RouterHolder(Router.build(config))
    elif config_path is not None:
        holder = RouterHolder.from_path(config_path)
    else:
        holder = RouterHolder(Router.build(default_config()))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, HttpLimits]]:
        # CPU-heavy steps of long prompts run in worker threads, but a thread running Python holds the GIL for
        # up to the switch interval (5 ms) before the event loop may run again; a shorter one keeps the loop,
        # and with it every short request, turning while a long prompt is scanned.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        traces = tracing.start(holder.router.config.observability, __version__)  # read once: reloads keep it
        cpu.configure(holder.router.config.server.cpu_processes)  # read once, too
        tasks = [asyncio.create_task(holder.health_checks())]
        if holder.path is not None:
            if watch:
                tasks.append(asyncio.create_task(holder.watch()))
            with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, lambda: tasks.append(asyncio.create_task(holder.reload("SIGHUP"))))
        if settle_heap:
            heap.settle()  # last: what starting made is all alive now
        try:
            yield {STATE_KEY: HttpLimits.of(holder.router.config.server)}  # read by each new connection
        finally:
            for task in tasks:
                task.cancel()
            await holder.aclose()
            await tracing.stop(traces)
            await asyncio.to_thread(cpu.shutdown, True)  # the workers exit within moments of being told

    # No /docs or /redoc: FastAPI's pages load their scripts from a CDN. /openapi.json is served by a route of
    # ours, so an operator can put it behind the admin key (auth.protect). A trailing slash is not redirected:
    # Starlette builds that Location from the Host header, which makes an open redirect.
    app = TurnoutApp(title="turnout", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None, redirect_slashes=False, description="An OpenAI-compatible LLM router.")
    app.state.holder = holder
    errors.install(app)
    app.include_router(routes.router)
    app.include_router(outcome_routes.router)
    app.include_router(dashboard.router)
    # Each door's endpoints are plain Starlette routes put ahead of FastAPI twins, which are there for the OpenAPI
    # schema only: FastAPI's per-route machinery (dependencies, its own exception wrapping) is used by none of
    # these handlers; it costs about 0.17 ms of CPU a request around a trivial handler (measured side by side).
    app.state.doors = [doors.get(name)() for name in doors.names()]
    for door in app.state.doors:
        endpoint = routes.door_endpoint(door)
        app.door_endpoints.update((path, endpoint) for path in door.paths if "{" not in path)
        app.add_api_route(door.paths[0], endpoint, methods=["POST"], openapi_extra=door.openapi,
                          name=f"{door.name} (routed)")
        app.router.routes[:0] = [Route(path, endpoint, methods=["POST"]) for path in door.paths] + door.routes()
    return app


def app_from_env() -> TurnoutApp:
    """Factory for `uvicorn --factory` and multi-worker serving: the config path comes from TURNOUT_CONFIG."""
    path = os.environ.get(CONFIG_ENV) or None
    from turnout.server import logs

    logs.configure(os.environ.get("TURNOUT_LOG_LEVEL", "info"), os.environ.get("TURNOUT_LOG_FORMAT", "text"))
    return create_app(Path(path) if path else None, watch=os.environ.get("TURNOUT_WATCH", "1") != "0",
                      settle_heap=True)
