"""Fast response plugin: answer at once with a canned reply (or an OpenAI-shaped error), no backend call."""

from __future__ import annotations

import time
from typing import Any

from pydantic import Field, model_validator

from turnout.context import RoutingContext, estimate_tokens
from turnout.errors import TurnoutError
from turnout.params import Params
from turnout.plugins.base import Plugin, register
from turnout.plugins.system_prompt import render, template_signals


class FastResponseParams(Params):
    content: str | None = Field(None, description="the assistant reply to send")
    error: str | None = Field(None, description="instead of a reply, refuse with this error message")
    status: int = Field(400, ge=400, le=599, description="HTTP status of the error")
    code: str = Field("request_refused", description="error code of the error")

    @model_validator(mode="after")
    def _one(self):
        if (self.content is None) == (self.error is None):
            raise ValueError("set exactly one of `content` or `error`")
        return self


def canned_completion(ctx: RoutingContext, content: str, model: str) -> dict[str, Any]:
    completion = estimate_tokens(content)
    return {"id": f"chatcmpl-turnout-{ctx.request_id}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 0, "completion_tokens": completion, "total_tokens": completion}}


@register("fast_response")
class FastResponsePlugin(Plugin):
    Params = FastResponseParams

    def referenced_signals(self) -> list[str]:
        return template_signals(self.params.content or "")

    async def before(self, ctx: RoutingContext) -> dict[str, Any]:
        if self.params.error is not None:
            raise TurnoutError(self.params.error, status=self.params.status, type="invalid_request_error",
                               code=self.params.code)
        return canned_completion(ctx, render(self.params.content or "", ctx), "turnout")
