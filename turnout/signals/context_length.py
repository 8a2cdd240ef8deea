"""Context-length signal: how long the conversation is, in (estimated) tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from turnout.context import RoutingContext, SignalResult, clean_text
from turnout.params import Params
from turnout.signals.base import Signal, off_loop, register

OFF_LOOP_CHARS = 8192


class ContextLengthParams(Params):
    min_tokens: int = Field(0, ge=0)
    max_tokens: int | None = Field(None, ge=1)
    counter: Literal["estimate", "wordpiece"] = Field(
        "estimate", description="estimate: UTF-8 bytes / 4 (microseconds); wordpiece: exact count with the shipped "
                                "MiniLM tokenizer (about 1 ms per 2,000 tokens)")

    @model_validator(mode="after")
    def _ordered(self):
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError("max_tokens must be at least min_tokens")
        return self


def wordpiece_tokens(ctx: RoutingContext) -> int:
    if "tokens:wordpiece" not in ctx.cache:
        from turnout.models.encoders import get_encoder

        tokenizer = get_encoder("minilm-static").tokenizer
        # encode_batch, not encode: only the batch call releases the GIL, so a long count in a worker thread
        # does not hold the event loop anyway
        encoding = tokenizer.encode_batch([clean_text(ctx.text("all"))], add_special_tokens=False)[0]
        ctx.cache["tokens:wordpiece"] = len(encoding)
    return ctx.cache["tokens:wordpiece"]


@register("context_length")
class ContextLengthSignal(Signal):
    """Matched when min_tokens ≤ tokens (≤ max_tokens); score grows with length past min_tokens."""

    Params = ContextLengthParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        if self.params.counter == "estimate":
            tokens = ctx.token_estimate
        elif "tokens:wordpiece" in ctx.cache or len(ctx.text("all")) <= OFF_LOOP_CHARS:
            tokens = wordpiece_tokens(ctx)
        else:  # ~1 ms per 2,000 tokens: a long conversation is counted off the event loop
            tokens = await off_loop(wordpiece_tokens, ctx)
        p = self.params
        matched = tokens >= p.min_tokens and (p.max_tokens is None or tokens <= p.max_tokens)
        score = 1.0 if matched else (tokens / p.min_tokens if p.min_tokens else 0.0)
        return SignalResult(matched, min(score, 1.0), {"tokens": tokens})
