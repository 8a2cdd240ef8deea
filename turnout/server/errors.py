"""Every error a client sees is in the shape of the protocol it spoke (the door that owns the path; OpenAI's
elsewhere), with no stack trace and no credential in it. A routed request's errors are shaped by its Exchange;
these handlers catch the rest (other endpoints, unknown paths, wrong methods, bugs)."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from turnout.doors import Door
from turnout.doors.chat import ChatDoor
from turnout.errors import InvalidRequestError, RouteNotFoundError, TurnoutError, scrub_message
from turnout.server.exchange import error_response

log = logging.getLogger("turnout.errors")
OPENAI = ChatDoor()  # OpenAI's error shape, for paths no door owns


def install(app: FastAPI) -> None:
    def secrets(request: Request) -> tuple[str, ...]:
        holder = getattr(request.app.state, "holder", None)
        return holder.router.secrets() if holder is not None else ()

    def door_of(request: Request) -> Door:
        path = request.url.path
        return next((d for d in getattr(request.app.state, "doors", ()) if d.owns(path)), OPENAI)

    def shaped(exc: TurnoutError, request: Request) -> Response:
        return error_response(exc, door_of(request), secrets(request), request)

    @app.exception_handler(TurnoutError)
    async def _turnout(request: Request, exc: TurnoutError) -> Response:
        return shaped(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in err["loc"] if p != "body") or None
        return shaped(InvalidRequestError(f"{param}: {err['msg']}" if param else err["msg"], param=param), request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return shaped(RouteNotFoundError(f"no such endpoint: {request.method} {request.url.path}"), request)
        if exc.status_code == 405:
            return shaped(TurnoutError(f"method {request.method} is not allowed on {request.url.path}", status=405,
                                       type="invalid_request_error", code="method_not_allowed"), request)
        return shaped(TurnoutError(str(exc.detail), status=exc.status_code, type="invalid_request_error",
                                   code=f"http_{exc.status_code}"), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # the type and a scrubbed message go to the log; the client learns only that it was our fault
        log.error("unhandled %s on %s %s: %s", type(exc).__name__, request.method, request.url.path,
                  scrub_message(str(exc), secrets(request))[:500])
        return error_response(TurnoutError("internal error in turnout; see the server log", code="internal_error"),
                              door_of(request), ())
