"""Reask signal: the same tenant asks a near-identical question again within `window_s` — implicit evidence that
the previous answer was poor. Matched when the last user message has the same normalised text as one of the
tenant's recent ones, or the packaged static encoder's cosine similarity to one reaches `threshold`.

A match also rates the previous request's outcome `implicit_rating` (through the outcome record and
`Router.learn`, done by the server when it writes this request's record), so an online selector learns from
re-asks without any explicit feedback. The signal only runs when a decision or plugin references it."""

from __future__ import annotations

import time

import numpy as np
from pydantic import Field

from turnout.config.models import StateConfig
from turnout.context import RoutingContext, SignalResult
from turnout.models.request import request_embedding
from turnout.params import Params
from turnout.signals.base import Signal, register
from turnout.state.feedback import (
    Ask,
    FeedbackState,
    StoreUnavailable,
    feedback_state,
    text_hash,
)

ENCODER = "minilm-static"


class ReaskParams(Params):
    window_s: float = Field(600, gt=0, le=86400, description="how long a question counts as recent")
    threshold: float = Field(0.95, ge=0, le=1, description="cosine similarity at which a question is the same")
    implicit_rating: float | None = Field(0.0, ge=0, le=1, description="the rating a re-asked answer gets "
                                                                       "(null: none, only the signal matches)")
    keep: int = Field(20, ge=1, le=200, description="recent questions kept per tenant")
    min_chars: int = Field(16, ge=0, description="shorter messages ('yes', 'go on') are never re-asks")


@register("reask")
class ReaskSignal(Signal):
    """Score = the best similarity to a recent question of the same tenant (1.0 for the same text)."""

    Params = ReaskParams
    cost = 10  # a shared-state round trip: runs with the other costly signals, under their timeout

    def __init__(self, name: str, params: ReaskParams) -> None:
        super().__init__(name, params)
        self.state: FeedbackState = feedback_state("memory", "", "turnout")

    def bind_state(self, state_config: StateConfig, namespace: str) -> None:
        # its own list per tenant: two reask signals may keep different numbers of questions
        self.state = feedback_state(state_config.store, state_config.redis_url, f"{namespace}:reask:{self.name}")

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        p = self.params
        text = ctx.text("last_user")
        if len(text.strip()) < p.min_chars:
            return SignalResult(False, 0.0, {"reason": "too short"})
        tenant = ctx.caller.key_id
        vector = (await request_embedding(ctx, ENCODER, "last_user")).astype(np.float16)
        ask = Ask(time.time(), text_hash(text), ctx.request_id, vector)
        try:
            recent = await self.state.recent(tenant, p.window_s)
            await self.state.remember(tenant, ask, p.keep, p.window_s)
        except StoreUnavailable:
            return SignalResult(False, 0.0, error="feedback state unavailable")
        best, similar = None, 0.0
        for earlier in recent:  # newest first: the latest of equally similar questions is the one re-asked
            sim = 1.0 if earlier.digest == ask.digest else float(earlier.vector.astype(np.float32) @ vector)
            if sim > similar:
                best, similar = earlier, sim
        if best is None or similar < p.threshold:
            return SignalResult(False, max(similar, 0.0))
        detail = {"reask_of": best.request_id, "similarity": round(similar, 4),
                  "seconds_ago": round(ask.time - best.time, 1)}
        if p.implicit_rating is not None:
            detail["implicit_rating"] = p.implicit_rating
        return SignalResult(True, min(similar, 1.0), detail)
