"""Request parameters: cap `max_tokens`, force or remove `temperature`, drop fields the upstream must not see,
and fill defaults the caller left out."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from turnout.context import RoutingContext
from turnout.params import Params
from turnout.plugins.base import Plugin, register


class RequestParamsParams(Params):
    max_tokens: int | None = Field(None, ge=1, description="cap max_tokens / max_completion_tokens (and set it)")
    temperature: float | None = Field(None, ge=0, le=2, description="force this temperature")
    strip: list[str] = Field(default_factory=list, description="fields removed, e.g. [temperature, logit_bias]")
    defaults: dict[str, Any] = Field(default_factory=dict, description="fields set when the request has none")


@register("request_params")
class RequestParamsPlugin(Plugin):
    Params = RequestParamsParams

    async def before(self, ctx: RoutingContext) -> None:
        p = self.params
        body = {k: v for k, v in ctx.body.items() if k not in p.strip}
        for key, value in p.defaults.items():
            body.setdefault(key, value)
        if p.temperature is not None:
            body["temperature"] = p.temperature
        if p.max_tokens is not None:
            for key in ("max_tokens", "max_completion_tokens"):
                if isinstance(body.get(key), int) and body[key] > p.max_tokens:
                    body[key] = p.max_tokens
            if "max_tokens" not in body and "max_completion_tokens" not in body:
                body["max_tokens"] = p.max_tokens
        if body != ctx.body:
            ctx.set_body(body)
        return None
