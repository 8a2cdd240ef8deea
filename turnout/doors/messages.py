"""Anthropic's Messages API (POST /v1/messages, POST /v1/messages/count_tokens) as a door. A request is
translated into the internal chat form and routed like any other (messages_wire has the translation); when the
chosen model is an Anthropic one and the route runs no plugin, the body as it came goes to it natively (its
thinking blocks, cache_control and fields turnout does not translate survive), and models of the fallback chain
that speak another protocol get the translated body."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from turnout.access import allowed
from turnout.backends.anthropic import AnthropicBackend
from turnout.backends.base import Backend
from turnout.doors.base import (
    Call,
    Chunk,
    Door,
    Framer,
    check_sizes,
    count_parts,
    register,
)
from turnout.doors.chat_schema import TURNOUT_FIELDS
from turnout.doors.messages_output import EventWriter, from_chat, native_usage
from turnout.doors.messages_wire import MessagesRequest, check_request, to_chat
from turnout.errors import (
    StreamInterruptedError,
    TurnoutError,
    UpstreamError,
    scrub_field,
    scrub_message,
)
from turnout.jsonutil import dumps

#: HTTP status -> Anthropic's error type
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               503: "overloaded_error", 529: "overloaded_error"}
#: Anthropic's own error types: one an Anthropic upstream named (an overloaded_error mid-stream) is kept
KNOWN_TYPES = frozenset(ERROR_TYPES.values()) | {"billing_error", "timeout_error"}


def error_type(exc: TurnoutError) -> str:
    if exc.code in KNOWN_TYPES and exc.status >= 500:
        return exc.code  # an Anthropic upstream's own word for its failure (its type arrives as our code)
    if isinstance(exc, UpstreamError) and exc.upstream_status in (503, 529):
        return "overloaded_error"  # answered 502 (an upstream's 5xx), but the client may wait and retry
    if exc.status in ERROR_TYPES:
        return ERROR_TYPES[exc.status]
    return "api_error" if exc.status >= 500 else "invalid_request_error"


def error_object(exc: TurnoutError, secrets: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(exc), "message": scrub_message(exc.message, secrets)}}


def event(kind: str, data: str | bytes) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + (data if isinstance(data, bytes) else data.encode("utf-8")) \
        + b"\n\n"


class MessagesFramer(Framer):
    """Anthropic's event stream. The stream's first chunk tells its form: an Anthropic upstream's own events,
    passed through, or internal chat chunks, translated."""

    def __init__(self, message_id: str, stops: list[str], input_estimate: int) -> None:
        self.response_id: str | None = message_id
        self.writer = EventWriter(message_id, stops, input_estimate)
        self.native: bool | None = None

    def frames(self, batch: list[Chunk], parsed: list[Any]) -> bytes:
        out = []
        for text, data in zip(batch, parsed):
            if not isinstance(data, dict):
                raise StreamInterruptedError("the upstream sent a stream chunk that is not a JSON object")
            if self.native is None:
                self.native = "object" not in data
                if self.native:
                    self.response_id = None  # the upstream's own id goes to the client: read from its event
            if self.native:
                out.append(event(str(data.get("type")), text))
            else:
                out += [event(e["type"], dumps(e)) for e in self.writer.feed(data)]
        return b"".join(out)

    async def end(self, trailer: str) -> bytes:
        closing = b"" if self.native else b"".join(event(e["type"], dumps(e)) for e in self.writer.finish_events())
        return closing + b": " + trailer.encode() + b"\n\n"  # an SSE comment: clients skip it, scripts read it

    def error(self, exc: TurnoutError, secrets: tuple[str, ...]) -> bytes:
        return event("error", dumps(error_object(exc, secrets)))


@register("messages")
class MessagesDoor(Door):
    paths = ("/v1/messages",)
    openapi: ClassVar[dict[str, Any] | None] = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": MessagesRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    async def inbound(self, body: Any, call: Call) -> dict[str, Any]:
        if isinstance(body, dict):
            messages, system = body.get("messages"), body.get("system")
            parts = count_parts(messages, "content", nested_up_to=call.router.config.server.max_parts)
            check_sizes(call, messages, parts + (len(system) if isinstance(system, list) else 0), body.get("tools"))
        request = check_request(body, counting=call.state.get("counting", False))
        call.state["body"] = body
        return to_chat(body, request)

    # ----- answering ----------------------------------------------------------------------------------------
    def native(self, call: Call) -> bool:
        """Whether the Anthropic body goes as it came: to an Anthropic model, with no plugin to run on the
        internal form."""
        assert call.route is not None
        return not call.route.plugins and call.router.config.models[call.route.model].provider == "anthropic"

    def native_body(self, call: Call, backend: AnthropicBackend, stream: bool) -> dict[str, Any]:
        body = {k: v for k, v in call.state["body"].items() if k not in TURNOUT_FIELDS}
        return {**body, "model": backend.upstream_model, "stream": stream}

    @staticmethod
    def native_headers(call: Call) -> dict[str, str] | None:
        """The client's beta flags go with its body: they name features of the body's own fields."""
        beta = call.headers.get("anthropic-beta")
        return {"anthropic-beta": beta} if beta else None

    def chain(self, call: Call) -> list[str]:
        assert call.ctx is not None and call.route is not None
        return allowed(call.ctx.caller, call.router.dispatcher.chain(call.route.model, call.route.fallbacks))

    async def complete(self, call: Call) -> dict[str, Any]:
        if not self.native(call):
            return await super().complete(call)
        assert call.ctx is not None and call.route is not None
        ctx = call.ctx

        async def answer(backend: Backend) -> dict[str, Any]:
            if isinstance(backend, AnthropicBackend):
                return await backend.messages(self.native_body(call, backend, False), self.native_headers(call))
            return await backend.complete(ctx.body)  # a fallback that speaks chat: the translated body

        call.route.model, result = await call.router.dispatcher.call(self.chain(call), answer, call.route.dispatch)
        ctx.model = call.route.model
        return result

    async def stream(self, call: Call) -> AsyncIterator[list[Chunk]]:
        if not self.native(call):
            return await super().stream(call)
        assert call.ctx is not None and call.route is not None
        ctx = call.ctx

        def answer(backend: Backend) -> AsyncIterator[list[Chunk]]:
            if isinstance(backend, AnthropicBackend):
                return backend.messages_stream(self.native_body(call, backend, True), self.native_headers(call))
            return backend.stream(ctx.body)

        call.route.model, batches = await call.router.dispatcher.open_stream(self.chain(call), answer,
                                                                             call.route.dispatch)
        ctx.model = call.route.model
        return batches

    def tally(self, data: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        if "object" in data:  # an internal completion or chunk
            return super().tally(data)
        return native_usage(data)

    # ----- shaping ------------------------------------------------------------------------------------------
    @staticmethod
    def _facts(call: Call) -> tuple[str, list[str], int]:
        assert call.ctx is not None
        stops = call.ctx.body.get("stop") or []
        return f"msg_{call.ctx.request_id}", stops, call.ctx.token_estimate

    async def outbound(self, completion: dict[str, Any], call: Call) -> dict[str, Any]:
        if completion.get("type") == "message" and "object" not in completion:
            return completion  # an Anthropic upstream's own answer
        return from_chat(completion, *self._facts(call))

    def framer(self, call: Call) -> Framer:
        return MessagesFramer(*self._facts(call))

    def error_body(self, exc: TurnoutError, secrets: tuple[str, ...]) -> dict[str, Any]:
        body = error_object(exc, secrets)
        param = scrub_field(exc.param, secrets)
        if param and not body["error"]["message"].startswith(param):  # Anthropic names the field first
            body["error"]["message"] = f"{param}: {body['error']['message']}"
        return body

    # ----- count_tokens -------------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"])]

    async def count_tokens(self, request: Request) -> Response:
        """turnout's token estimate (about 4 characters a token, text only) of the translated request, once it
        is authenticated, validated and routable; not Anthropic's tokenizer, and no upstream is asked."""
        from turnout.server.exchange import (
            Exchange,  # the server imports every door: not at import time
        )

        router = request.app.state.holder.router
        exchange = Exchange(router, self, request)
        exchange.caller, _ = router.access.authenticate(exchange.headers)
        exchange.state["counting"] = True
        ctx = await exchange.context()
        await self.route(exchange)  # an unknown model is a 404, a model the key may not use a 403, as for create
        return JSONResponse({"input_tokens": ctx.token_estimate})
