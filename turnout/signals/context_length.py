"""Context-length signal: how long the conversation is, in (estimated) tokens."""

from __future__ import annotations

from pydantic import Field, model_validator

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register


class ContextLengthParams(Params):
    min_tokens: int = Field(0, ge=0)
    max_tokens: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError("max_tokens must be at least min_tokens")
        return self


@register("context_length")
class ContextLengthSignal(Signal):
    """Matched when min_tokens ≤ tokens (≤ max_tokens); score grows with length past min_tokens."""

    Params = ContextLengthParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        tokens = ctx.token_estimate
        p = self.params
        matched = tokens >= p.min_tokens and (p.max_tokens is None or tokens <= p.max_tokens)
        score = 1.0 if matched else (tokens / p.min_tokens if p.min_tokens else 0.0)
        return SignalResult(matched, min(score, 1.0), {"tokens": tokens})
