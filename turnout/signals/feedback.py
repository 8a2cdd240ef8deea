"""Feedback signal: the tenant's last explicit rating (POST /v1/feedback) was at most `below`, within `window_s`
— a user who just rated an answer badly, whom a decision can route up."""

from __future__ import annotations

import time

from pydantic import Field

from turnout.config.models import StateConfig
from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register
from turnout.state.feedback import FeedbackState, StoreUnavailable, feedback_state


class FeedbackParams(Params):
    below: float = Field(0.5, ge=0, le=1, description="matched when the last rating is at most this")
    window_s: float = Field(1800, gt=0, le=86400, description="a rating older than this no longer counts")


@register("feedback")
class FeedbackSignal(Signal):
    """Score = 1 − the last rating (how bad it was), when it is recent enough."""

    Params = FeedbackParams
    cost = 10  # a shared-state round trip

    def __init__(self, name: str, params: FeedbackParams) -> None:
        super().__init__(name, params)
        self.state: FeedbackState = feedback_state("memory", "", "turnout")

    def bind_state(self, state_config: StateConfig, namespace: str) -> None:
        self.state = feedback_state(state_config.store, state_config.redis_url, namespace)

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        try:
            last = await self.state.rating(ctx.caller.key_id)
        except StoreUnavailable:
            return SignalResult(False, 0.0, error="feedback state unavailable")
        if last is None or last[1] < time.time() - self.params.window_s:
            return SignalResult(False, 0.0)
        rating, at = last
        return SignalResult(rating <= self.params.below, 1.0 - rating,
                            {"last_rating": rating, "seconds_ago": round(time.time() - at, 1)})
