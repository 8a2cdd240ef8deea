"""`jailbreak`: how likely the request carries a jailbreak or a prompt injection, in any message — the user's,
a tool result, a memory in the system message — and in any of en, de, fr, es, it (turnout.models.injection)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.models.injection import load_detector
from turnout.models.injection_request import injection_inline, request_injection
from turnout.params import Params
from turnout.signals.base import Signal, register


class JailbreakParams(Params):
    threshold: float | None = Field(None, ge=0, le=1, description=(
        "matched at this probability; default: the detector's own threshold, calibrated on a held-out "
        "multilingual split (0.5 for an old embedding-classifier artifact)"))
    artifact: str | None = Field(None, description=(
        "builtin:jailbreak (default), builtin:jailbreak-embedding (the classifier it replaced), or an .npz path"))
    scope: Literal["last_user", "user", "all"] = Field("all", description=(
        "the messages scored: all (every role, tool results included), user (user and tool messages), last_user"))


@register("jailbreak")
class JailbreakSignal(Signal):
    """Score = the highest injection probability over every message (and every window of a long one)."""

    Params = JailbreakParams
    cost = 10

    def __init__(self, name: str, params: JailbreakParams) -> None:
        super().__init__(name, params)
        self.artifact = params.artifact or "builtin:jailbreak"
        self.detector = load_detector(self.artifact)
        self.threshold = params.threshold if params.threshold is not None else self.detector.threshold

    def runs_inline(self, ctx: RoutingContext) -> bool:
        return injection_inline(ctx, self.artifact, self.params.scope)

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        p, where = await request_injection(ctx, self.detector, self.artifact, self.params.scope)
        return SignalResult(p >= self.threshold, p, {"p_jailbreak": round(p, 4), **where})
