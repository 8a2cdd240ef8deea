"""Every error a client sees is OpenAI-shaped, with no stack trace and no credential in it."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from turnout.errors import (
    InvalidRequestError,
    RouteNotFoundError,
    TurnoutError,
    scrub_field,
    scrub_message,
)

log = logging.getLogger("turnout.errors")


def error_response(exc: TurnoutError, secrets: tuple[str, ...] = ()) -> JSONResponse:
    return JSONResponse(exc.to_dict(secrets), status_code=exc.status, headers=exc.headers)


def install(app: FastAPI) -> None:
    def secrets(request: Request) -> tuple[str, ...]:
        holder = getattr(request.app.state, "holder", None)
        return holder.router.secrets() if holder is not None else ()

    @app.exception_handler(TurnoutError)
    async def _turnout(request: Request, exc: TurnoutError) -> JSONResponse:
        if exc.status >= 500:
            known = secrets(request)
            log.warning("%s %s -> %d %s: %s", request.method, request.url.path, exc.status,
                        scrub_field(exc.code, known), scrub_message(exc.message, known))
        return error_response(exc, secrets(request))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in err["loc"] if p != "body") or None
        return error_response(InvalidRequestError(f"{param}: {err['msg']}" if param else err["msg"], param=param))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(RouteNotFoundError(f"no such endpoint: {request.method} {request.url.path}"))
        if exc.status_code == 405:
            return error_response(TurnoutError(f"method {request.method} is not allowed on {request.url.path}",
                                               status=405, type="invalid_request_error", code="method_not_allowed"))
        return error_response(TurnoutError(str(exc.detail), status=exc.status_code, type="invalid_request_error",
                                           code=f"http_{exc.status_code}"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # the type and a scrubbed message go to the log; the client learns only that it was our fault
        log.error("unhandled %s on %s %s: %s", type(exc).__name__, request.method, request.url.path,
                  scrub_message(str(exc), secrets(request))[:500])
        return error_response(TurnoutError("internal error in turnout; see the server log", code="internal_error"))
