"""POST /v1/embeddings, OpenAI's embeddings API. Only models that declare `embeddings: true` serve it, and they
serve nothing else (a chat request to one is refused, as are embeddings asked of a chat model).

Routing: a model name (with `routing.allow_direct`) goes to that model, then its own fallbacks. An alias goes to
the config's embeddings models the caller may use, in config order: the first, then its fallbacks, then the
others. Decisions route chat requests only (the loader refuses an embeddings model in one), so an alias's
embeddings skip them and their signals. The request goes to the backends as it came, with `model` replaced:
plugins, written for chat answers, do not run. The internal body still carries the text as one user message, for
the token estimate that reservations and a missing `usage` fall back on."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, StrictInt, StrictStr, TypeAdapter

from turnout.access import AccessControl, allowed
from turnout.context import Choice
from turnout.doors.base import Call, Door, Framer, register
from turnout.doors.chat import ChatFramer
from turnout.doors.chat_schema import Open
from turnout.doors.openai_inputs import TextOrTokens, check_body, check_text_or_tokens
from turnout.errors import InvalidRequestError, ModelNotFoundError, PermissionDenied
from turnout.pipeline import Route

#: where the internal body keeps the embeddings request itself (its `messages` are only for signals)
REQUEST = "embeddings_request"


class EmbeddingsRequest(Open):
    model: StrictStr = Field(min_length=1)
    input: TextOrTokens
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: StrictInt | None = Field(None, ge=1)
    user: StrictStr | None = None


_adapter = TypeAdapter(EmbeddingsRequest)


def embeddings_models(call: Call) -> list[str]:
    return [name for name, model in call.router.config.models.items() if model.embeddings]


@register("embeddings")
class EmbeddingsDoor(Door):
    paths = ("/v1/embeddings", "/embeddings")
    openapi: ClassVar[dict[str, Any] | None] = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": EmbeddingsRequest.model_json_schema(ref_template="#/components/schemas/{model}")}}}}

    async def inbound(self, body: Any, call: Call) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidRequestError("the request body must be a JSON object")
        texts = check_text_or_tokens(body, "input")
        check_body(_adapter, body, checked="input")
        # token ids carry no text a signal could read
        return {"model": body["model"], "messages": [{"role": "user", "content": "\n".join(texts or ())}],
                REQUEST: body}

    async def route(self, call: Call) -> Route:
        assert call.ctx is not None
        config, ctx = call.router.config, call.ctx
        requested = ctx.body["model"]
        served = embeddings_models(call)
        if requested in call.router.aliases:
            names = allowed(ctx.caller, served)
            if not served:
                raise ModelNotFoundError(f"model: no model here serves embeddings, so '{requested}' has none to "
                                         "route to (a model serves them with `embeddings: true`)", param="model")
            if not names:
                raise PermissionDenied("this key may use none of the embeddings models", param="model",
                                       code="model_not_allowed")
            first = names[0]
            choice = Choice(first, {n: float(n == first) for n in names},
                            "the first embeddings model in config order; the others are its fallbacks")
            return Route("routed", "embeddings", first, choice, fallbacks=names[1:])
        if requested in config.models and config.routing.allow_direct:
            if not config.models[requested].embeddings:
                raise InvalidRequestError(f"model: '{requested}' is a chat model; it does not serve embeddings "
                                          f"(embeddings models here: {', '.join(served) or 'none'})",
                                          param="model", code="model_not_embeddings")
            AccessControl.check_model(ctx.caller, requested)
            return Route("direct", "direct", requested, Choice(requested, {requested: 1.0}, "requested by name"))
        valid = sorted(call.router.aliases) + (served if config.routing.allow_direct else [])
        raise ModelNotFoundError(f"The model '{requested}' does not exist here; use one of: {', '.join(valid)}",
                                 param="model")

    async def complete(self, call: Call) -> dict[str, Any]:
        ctx, route = call.ctx, call.route
        assert ctx is not None and route is not None
        dispatcher = call.router.dispatcher
        chain = allowed(ctx.caller, dispatcher.chain(route.model, route.fallbacks))
        request, headers = ctx.body[REQUEST], ctx.upstream_headers or None
        route.model, answer = await dispatcher.call(chain, lambda backend: backend.embed(request, headers),
                                                    route.dispatch)
        ctx.model = route.model
        return answer

    def tally(self, data: dict[str, Any]) -> tuple[dict[str, Any] | None, int]:
        """Embeddings are billed for their input alone (the model's `cost.input`)."""
        usage = data.get("usage")
        prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        if isinstance(prompt, int) and not isinstance(prompt, bool):
            return {"prompt_tokens": prompt, "completion_tokens": 0, "total_tokens": prompt}, 0
        return {"completion_tokens": 0}, 0  # no usage: the prompt is estimated from the text

    async def outbound(self, completion: dict[str, Any], call: Call) -> dict[str, Any]:
        return completion

    def framer(self, call: Call) -> Framer:
        return ChatFramer()  # never used: embeddings do not stream
