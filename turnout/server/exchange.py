"""One routed request's lifecycle, whatever door it came in by: authenticate, admit (rpm), read the body, take a
concurrency slot, translate (the door), route, reserve budget and tokens, run the plugins and backends, account
(cost, tokens, metrics, the log line) and answer in the door's shape. Every door drives this one object, so the
bookkeeping exists once."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from turnout import tracing
from turnout.access import Reservation, usage_tokens
from turnout.context import Caller, RoutingContext, tokens_for_chars
from turnout.doors import Door
from turnout.doors.chat_schema import TURNOUT_FIELDS
from turnout.errors import (
    InvalidRequestError,
    TurnoutError,
    UpstreamError,
    scrub_field,
    scrub_message,
)
from turnout.jsonutil import dumps, loads
from turnout.pipeline import Route, Router
from turnout.plans import plan_cost, plan_tokens
from turnout.server import metrics, outcome_record
from turnout.server.body import read_json
from turnout.server.sse import CLIENT_GONE, EventStreamResponse, relay

log = logging.getLogger("turnout.request")
errors_log = logging.getLogger("turnout.errors")


_random = bytearray()  # the OS's random bytes, read 4 KiB at a time and used from the end
os.register_at_fork(after_in_child=_random.clear)  # a forked worker must not hand out its parent's ids


def new_request_id() -> str:
    """A random request id shaped as uuid4().hex (32 hex digits, the version and variant bits set): uuid4() made a
    UUID object and a getrandom() call per request, 3 µs; this is 0.5."""
    if not _random:
        _random.extend(os.urandom(4096))
    raw = _random[-16:]
    del _random[-16:]
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    return raw.hex()


def request_headers(request: Request) -> dict[str, str]:
    # straight from the ASGI scope: Starlette's Headers object decodes the whole list again on each look-up
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.scope["headers"]}


def error_response(exc: TurnoutError, door: Door, secrets: tuple[str, ...], request: Request | None = None) -> Response:
    """The error in the door's shape; a 5xx is logged too (scrubbed: it may quote an upstream's words)."""
    if exc.status >= 500 and request is not None:
        errors_log.warning("%s %s -> %d %s: %s", request.method, request.url.path, exc.status,
                           scrub_field(exc.code, secrets), scrub_message(exc.message, secrets))
    return Response(dumps(door.error_body(exc, secrets)), status_code=exc.status, headers=exc.headers,
                    media_type="application/json")


class Exchange:
    """The request as the door sees it (the `Call` protocol: router, headers, caller, ctx, route)."""

    def __init__(self, router: Router, door: Door, request: Request) -> None:
        self.router = router
        self.door = door
        self.request = request
        self.headers = request_headers(request)
        self.caller = Caller()
        self.ctx: RoutingContext | None = None
        self.route: Route | None = None
        self.state: dict[str, Any] = {}  # the door's notes on this request (Call.state)
        self.reservation: Reservation | None = None
        self.start = time.perf_counter()
        self.response_id: str | None = None  # the id the client saw (its outcome record is found by it too)
        self.ttft_s: float | None = None
        self.span: tracing.RequestSpan | None = None  # the trace's server span, when tracing is on

    async def context(self) -> RoutingContext:
        """The request body read and translated into a RoutingContext (no limits, no slot: /v1/route uses it)."""
        server = self.router.config.server
        raw = await read_json(self.request, server.max_body_bytes, server.body_timeout_s, server.max_json_depth,
                              server.max_json_containers, self.headers.get("content-length", ""))
        body = await self.door.inbound(raw, self)
        messages = body.get("messages")
        if isinstance(messages, list) and len(messages) > server.max_messages:
            raise InvalidRequestError(f"messages: {len(messages)} messages, more than this server takes "
                                      f"({server.max_messages})", param="messages", code="too_many_messages")
        controls = {name: body.pop(name) for name in TURNOUT_FIELDS if name in body}
        self.ctx = RoutingContext(body, headers=self.headers, caller=self.caller, request_id=new_request_id(),
                                  controls=controls)
        return self.ctx

    async def serve(self) -> Response:
        current = self.router
        holds_slot = streaming = False
        if tracing.on:
            self.span = tracing.RequestSpan(self.request.method, self.request.url.path, self.door.name, self.headers)
        try:
            # Who is asking and whether they may, before their body is read: a key's slow or oversized uploads
            # then cost it alone, and a concurrency slot is only taken by a request whose body has arrived.
            self.caller, key = current.access.authenticate(self.headers)
            await current.access.admit_request(key)
            ctx = await self.context()
            if current.in_flight >= current.config.server.max_concurrent:
                raise TurnoutError("turnout is at its limit of concurrent requests; retry shortly", status=503,
                                   type="service_unavailable", code="overloaded", headers={"retry-after": "1"})
            current.acquire()
            holds_slot = True
            route = self.route = await self.door.route(self)
            # at the dearest model the request may end on; settled below, or by the stream when it ends
            if current.access.reserves(key):
                self.reservation = await current.access.reserve(key, current.access.estimate(
                    ctx.body, ctx.token_estimate, route.plan.referenced_models() if route.plan is not None
                    else current.dispatcher.chain(route.model, route.fallbacks)))  # a plan: its dearest model
            if ctx.stream:
                response = await self._stream(ctx, route)
                holds_slot = False  # the stream releases the slot and the reservation when it ends
                streaming = True
                self.reservation = None
                return response
            result = await self.door.complete(self)
            headers = self.route_headers()  # after the plugins, which may re-target or add headers
            usage, chars = self.door.tally(result)
            cost = self.cost(usage, chars)
            headers["x-turnout-cost-usd"] = f"{cost:.8f}"
            await current.access.settle(self.reservation, self.tokens(usage, chars), cost)
            answer = await self.door.outbound(result, self)
            self.response_id = outcome_record.response_id(answer)
            self.finish(200, cost, usage)
            return Response(dumps(answer), media_type="application/json", headers=headers)
        except TurnoutError as exc:
            # before the answer: the caller's next request has it; a plan that failed still paid for its calls
            spent = plan_cost(self.route.plan_attempts) if self.route is not None else 0.0
            await current.access.settle(self.reservation, self.tokens(None, 0) if spent else 0, spent)
            self.reservation = None
            self.finish(exc.status, spent, None, exc.code)
            if self.ctx is not None:
                exc.headers = {**exc.headers, "x-turnout-request-id": self.ctx.request_id}
            return error_response(exc, self.door, current.secrets(), self.request)
        finally:
            if holds_slot:
                current.release()
            current.access.settle_later(self.reservation)  # failed or cancelled: give the reservation back
            if self.span is not None:
                self.span.leave()  # a stream's span goes on until the stream ends (finish)
                if not streaming:
                    self.span.end({}, 499, "cancelled")  # finish never ran: the client went away (no-op if it did)

    # ----- accounting -------------------------------------------------------------------------------------
    def cost(self, usage: dict[str, Any] | None, completion_chars: int) -> float:
        """A plugin's answer (a cache hit, a canned reply) costs nothing."""
        assert self.ctx is not None and self.route is not None
        if self.ctx.answered_by:
            return 0.0
        if self.route.plan_attempts:  # a plan's every call is paid for, the answers it threw away too
            return plan_cost(self.route.plan_attempts)
        return self.router.cost_usd(self.route.model, usage, self.ctx, completion_chars)

    def tokens(self, usage: dict[str, Any] | None, completion_chars: int) -> int:
        assert self.ctx is not None
        if self.ctx.answered_by:
            return 0
        if self.route is not None and self.route.plan_attempts:
            return plan_tokens(self.route.plan_attempts, self.ctx.token_estimate)
        return usage_tokens(usage, self.ctx.token_estimate + tokens_for_chars(completion_chars))

    def route_headers(self) -> dict[str, str]:
        route, ctx = self.route, self.ctx
        assert route is not None and ctx is not None
        headers = {"x-turnout-model": route.model, "x-turnout-decision": route.decision,
                   "x-turnout-request-id": ctx.request_id}
        attempts = route.dispatch.attempts
        if len(attempts) > 1:
            headers["x-turnout-attempts"] = ",".join(f"{a.model}:{a.outcome}" for a in attempts)
        if ctx.response_headers:  # from plugins; an empty value removes a header
            headers.update(ctx.response_headers)
            headers = {k: v for k, v in headers.items() if v}
        return headers

    def finish(self, status: int, cost: float, usage: dict[str, Any] | None, error: str | None = None) -> None:
        """Metrics, the outcome record and the request's log line."""
        ctx, route = self.ctx, self.route
        seconds = time.perf_counter() - self.start
        metrics.observe(ctx, route, status, seconds, usage, cost)
        if self.span is not None:
            self.span.end(self.trace_attributes(cost, usage), status, error)
        if self.router.config.outcomes.enabled:
            outcome_record.record(self, status, seconds, cost, usage, error)
        if log.isEnabledFor(logging.INFO):
            fields = {"request_id": ctx.request_id if ctx else None, "door": self.door.name,
                      "decision": route.decision if route else None, "model": route.model if route else None,
                      "status": status, "ms": round(seconds * 1000, 1), "cost_usd": round(cost, 8), "error": error,
                      "caller": ctx.caller.key_id if ctx else None,
                      "cache": ctx.response_headers.get("x-turnout-cache") if ctx else None,
                      "attempts": len(route.dispatch.attempts) if route and len(route.dispatch.attempts) > 1
                      else None}
            log.info("request_id=%s decision=%s model=%s status=%d ms=%.1f cost_usd=%.8f%s", fields["request_id"],
                     fields["decision"], fields["model"], status, fields["ms"], cost,
                     f" error={error}" if error else "", extra=fields)

    def trace_attributes(self, cost: float, usage: dict[str, Any] | None) -> dict[str, Any]:
        """The server span's GenAI and turnout attributes (None values are left out)."""
        ctx, route = self.ctx, self.route
        used = usage or {}
        return {"turnout.request_id": ctx.request_id if ctx else None, "turnout.cost_usd": cost,
                "gen_ai.request.model": ctx.body.get("model") if ctx else None,
                "turnout.decision": route.decision if route else None,
                "gen_ai.response.model": route.model if route else None,
                "turnout.cache": ctx.response_headers.get("x-turnout-cache") if ctx else None,
                "turnout.answered_by": ctx.answered_by if ctx else None,
                "turnout.attempts": len(route.dispatch.attempts) if route else None,
                "gen_ai.usage.input_tokens": used.get("prompt_tokens"),
                "gen_ai.usage.output_tokens": used.get("completion_tokens")}

    # ----- streaming --------------------------------------------------------------------------------------
    async def _stream(self, ctx: RoutingContext, route: Route) -> Response:
        current, reservation = self.router, self.reservation
        chunks = await self.door.stream(self)
        headers = self.route_headers()
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            raise UpstreamError(f"upstream '{route.model}' returned an empty stream") from None
        self.ttft_s = time.perf_counter() - self.start
        usage: dict[str, Any] = {}
        completion_chars = 0
        tally = self.door.tally

        def on_chunk(chunk: str) -> Any:
            nonlocal completion_chars
            try:
                data = loads(chunk)
            except ValueError:
                return None
            if isinstance(data, dict):
                used, chars = tally(data)
                if used:
                    usage.update(used)
                completion_chars += chars
            return data

        def trailer() -> str:
            return f"turnout cost_usd={self.cost(usage or None, completion_chars):.8f}"

        def on_end(error: str | None) -> None:
            current.release()
            spent = self.cost(usage or None, completion_chars)
            status = 200 if error is None else 499 if error == CLIENT_GONE else 599
            self.finish(status, spent, usage or None, error)
            current.access.settle_later(reservation, self.tokens(usage or None, completion_chars), spent)

        headers["x-turnout-cost-usd"] = "0.00000000" if ctx.answered_by else \
            f"{current.cost_usd(route.model, {'completion_tokens': 0}, ctx):.8f}" if not route.plan_attempts else \
            f"{plan_cost(route.plan_attempts):.8f}"  # a plan has made every call before its stream starts
        if not route.plan_attempts:  # (a plan's cost is known in full before its stream starts)
            headers["x-turnout-cost-estimate"] = "prompt-only; the final cost is the last SSE comment"
        framer = outcome_record.IdSniffer(self.door.framer(self), self)  # notes the response id the client sees
        body = relay(first, chunks, framer=framer, on_chunk=on_chunk, on_end=on_end, trailer=trailer,
                     secrets=current.secrets)  # asked only if the stream fails
        return EventStreamResponse(body, media_type=framer.media_type,
                                   headers={**headers, "cache-control": "no-cache", "x-accel-buffering": "no"})

