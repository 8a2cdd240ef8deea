"""OpenAI's Responses API (POST /v1/responses), routed exactly like chat: the request is translated to the
internal chat form (responses_wire.py), answered by the plugins and backends, and shaped back into a `response`
object or its semantic event stream (responses_output.py, responses_stream.py).

Stored responses (`store`, default true) live in the state layer per API key, for `previous_response_id`,
GET/DELETE /v1/responses/{id} and GET /v1/responses/{id}/input_items. A conversation is kept whole with each
response (every earlier item, then this request's input and output), so a chain survives the expiry of its
middle links and a replica needs one read to continue it.

Pass-through: when every model of the route's chain has `responses_api: true` and the route runs no plugins
(plugins work on the internal form), the request goes to the upstream's own /responses unchanged, but for its
`model` and for `previous_response_id`, which this server resolves itself: the upstream gets the stored
conversation as input items, so it needs to have stored nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from turnout.access import allowed
from turnout.doors.base import (
    Call,
    Chunk,
    Door,
    Framer,
    check_sizes,
    count_parts,
    register,
)
from turnout.doors.responses_output import (
    Turn,
    adopt,
    chat_usage,
    from_completion,
    record,
    replayable,
)
from turnout.doors.responses_stream import RelayFramer, ResponsesFramer
from turnout.doors.responses_wire import (
    ResponsesRequest,
    check_request,
    routable,
    to_chat,
)
from turnout.errors import InvalidRequestError, TurnoutError
from turnout.jsonutil import dumps
from turnout.state.responses import ResponseStore, StoreUnavailable, response_store

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from turnout.pipeline import Router

log = logging.getLogger("turnout.responses")

#: Responses fields this server resolves itself, never sent to a pass-through upstream
_OURS = ("previous_response_id", "cache")


def store_of(router: Router) -> ResponseStore:
    config = router.config
    return response_store(config.state.store, url=config.state.redis_url, namespace=config.state.namespace,
                          max_stored=config.responses.max_stored)


def not_found(response_id: str, param: str | None) -> TurnoutError:
    what = "Previous response" if param == "previous_response_id" else "Response"
    return TurnoutError(f"{what} with id '{response_id[:100]}' not found.", status=404, param=param,
                        type="invalid_request_error",
                        code="previous_response_not_found" if param else "response_not_found")


def unavailable() -> TurnoutError:
    return TurnoutError("the responses store is unavailable; retry shortly", status=503, type="service_unavailable",
                        code="store_unavailable", headers={"retry-after": "1"})


async def load(router: Router, owner: str, response_id: str, param: str | None = None) -> dict[str, Any]:
    """A stored record of this owner; another owner's is as unknown as one never made (404 either way)."""
    try:
        found = await store_of(router).get(owner, response_id)
    except StoreUnavailable:
        raise unavailable() from None
    if found is None:
        raise not_found(response_id, param)
    return found


def _json(data: dict[str, Any]) -> Response:
    return Response(dumps(data), media_type="application/json")  # as routed answers are written


@register("responses")
class ResponsesDoor(Door):
    paths = ("/v1/responses", "/responses")
    openapi: ClassVar[dict[str, Any] | None] = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": ResponsesRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    # ----- translation ----------------------------------------------------------------------------------
    async def inbound(self, body: Any, call: Call) -> dict[str, Any]:
        if isinstance(body, dict):
            items = body.get("input")
            check_sizes(call, items, count_parts(items, "content", "output"), body.get("tools"), items="input")
        request = check_request(body)
        turn = Turn(request, body, call.caller.key_id)
        if request.previous_response_id:
            previous = await load(call.router, turn.owner, request.previous_response_id, "previous_response_id")
            turn.history = list(previous.get("conversation") or ())
            limit = call.router.config.server.max_body_bytes
            if len(dumps(turn.history)) + len(dumps(body)) > limit:  # a conversation grows by every turn
                raise TurnoutError(f"previous_response_id: the conversation it continues, with this input, is longer "
                                   f"than this server takes in one request ({limit} bytes); start a new one",
                                   status=413, type="invalid_request_error", code="conversation_too_large",
                                   param="previous_response_id")
        try:
            chat = to_chat(request, body, turn.history)
        except InvalidRequestError as exc:
            # built-in tools, file inputs, ...: refused unless the route turns out to pass the request through
            if not (exc.code or "").startswith("unsupported") or \
                    not any(m.responses_api for m in call.router.config.models.values()):
                raise
            turn.deferred = exc
            lenient = routable(body)
            chat = to_chat(check_request(lenient), lenient, turn.history)
        call.state["turn"] = turn  # read by the answer's shaping, whole or streamed
        return chat

    async def outbound(self, completion: dict[str, Any], call: Call) -> dict[str, Any]:
        turn: Turn = call.state["turn"]
        response = adopt(turn, completion) if turn.passthrough else from_completion(turn, completion)
        if not await self.save(call.router, turn, response):
            response["store"] = False  # answered, but a later previous_response_id to it will not be found
        return response

    def framer(self, call: Call) -> Framer:
        turn, router = call.state["turn"], call.router

        async def save(response: dict[str, Any]) -> bool:
            return await self.save(router, turn, response)

        return RelayFramer(turn, save) if turn.passthrough else ResponsesFramer(turn, save)

    async def save(self, router: Router, turn: Turn, response: dict[str, Any]) -> bool:
        """Store a finished response (unless the caller said `store: false`); False if the store failed."""
        if not turn.store or response.get("status") not in ("completed", "incomplete"):
            return True
        try:
            await store_of(router).put(turn.owner, turn.id, record(turn, response), router.config.responses.ttl_s)
        except StoreUnavailable:
            log.warning("response %s answered but not stored: the responses store is unavailable", turn.id)
            return False
        return True

    # ----- pass-through ---------------------------------------------------------------------------------
    def passthrough_chain(self, call: Call) -> list[str] | None:
        """The chain when the upstream can take the request as it is: every model speaks the Responses API
        and no plugin needs to see the internal form."""
        route, router = call.route, call.router
        assert route is not None
        if route.plugins:
            return None
        chain = allowed(call.caller, router.dispatcher.chain(route.model, route.fallbacks))
        models = router.config.models
        return chain if chain and all(models[m].responses_api for m in chain) else None

    @staticmethod
    def refuse_deferred(call: Call) -> None:
        deferred = call.state["turn"].deferred
        if deferred is not None:
            raise deferred

    def upstream_body(self, turn: Turn) -> dict[str, Any]:
        body = {k: v for k, v in turn.body.items() if k not in _OURS}
        if turn.history:
            body["input"] = replayable(turn.history) + turn.input
        return body

    def passthrough(self, call: Call) -> tuple[list[str], dict[str, Any]] | None:
        """The chain and the body to send as they are, when the route passes the request through; else None
        (after refusing what only a pass-through could have carried)."""
        chain = self.passthrough_chain(call)
        if chain is None:
            self.refuse_deferred(call)
            return None
        turn, route, ctx = call.state["turn"], call.route, call.ctx
        assert route is not None and ctx is not None
        turn.passthrough = True
        ctx.decision = route.decision
        return chain, self.upstream_body(turn)

    async def complete(self, call: Call) -> dict[str, Any]:
        if (through := self.passthrough(call)) is None:
            return await super().complete(call)
        (chain, body), route, ctx = through, call.route, call.ctx
        assert route is not None and ctx is not None
        route.model, result = await call.router.dispatcher.call(chain, lambda b: b.responses(body),  # type: ignore[attr-defined]
                                                                route.dispatch)
        ctx.model = route.model
        return result

    async def stream(self, call: Call) -> AsyncIterator[list[Chunk]]:
        if (through := self.passthrough(call)) is None:
            return await super().stream(call)
        (chain, body), route, ctx = through, call.route, call.ctx
        assert route is not None and ctx is not None
        route.model, batches = await call.router.dispatcher.open_stream(
            chain, lambda b: b.responses_stream(body), route.dispatch)  # type: ignore[attr-defined]
        ctx.model = route.model
        return batches

    def tally(self, data: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        if "choices" in data:
            return super().tally(data)  # the internal form
        if data.get("object") == "response":  # a passed-through answer
            chars = sum(len(part.get("text") or "") for item in data.get("output") or () if isinstance(item, dict)
                        for part in item.get("content") or () if isinstance(part, dict))
            return chat_usage(data.get("usage")), chars
        kind = data.get("type")
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = data.get("response")
            return chat_usage(response.get("usage") if isinstance(response, dict) else None), 0
        if kind == "response.output_text.delta" and isinstance(data.get("delta"), str):
            return None, len(data["delta"])
        return None, 0

    # ----- stored responses -----------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        return [Route("/v1/responses/{response_id}", self.stored, methods=["GET", "DELETE"]),
                Route("/v1/responses/{response_id}/input_items", self.input_items, methods=["GET"])]

    @staticmethod
    def _owner(request: Request) -> tuple[Router, str]:
        router: Router = request.app.state.holder.router
        headers = {k.lower(): v for k, v in request.headers.items()}
        caller, _ = router.access.authenticate(headers)  # any valid key; what it reads is its own
        return router, caller.key_id

    async def stored(self, request: Request) -> Response:
        router, owner = self._owner(request)
        response_id = request.path_params["response_id"]
        if request.method == "DELETE":
            try:
                deleted = await store_of(router).delete(owner, response_id)
            except StoreUnavailable:
                raise unavailable() from None
            if not deleted:
                raise not_found(response_id, None)
            return _json({"id": response_id, "object": "response", "deleted": True})
        return _json((await load(router, owner, response_id))["response"])

    async def input_items(self, request: Request) -> Response:
        router, owner = self._owner(request)
        found = await load(router, owner, request.path_params["response_id"])
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequestError(f"order: '{order[:20]}' is not one of asc, desc", param="order")
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            raise InvalidRequestError("limit: a whole number from 1 to 100", param="limit")
        items = list(found.get("input_items") or ())
        if order == "desc":
            items.reverse()
        start = 0
        if after := query.get("after"):
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequestError(f"after: no input item '{after[:100]}' in this response", param="after")
            start = ids.index(after) + 1
        page = items[start:start + limit]
        return _json({"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                      "last_id": page[-1]["id"] if page else None, "has_more": start + limit < len(items)})
