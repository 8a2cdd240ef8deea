"""The outcome record: what happened to one routed request, and what its caller said about it.

Written by `Exchange.finish` for every door (chat, responses, messages, completions, embeddings; a stream when
it ends), kept by `turnout.state.outcomes`, listed by the admin endpoints, rated by `POST /v1/feedback`, and
fed to online selectors through `Router.learn`. Plain data only, so it round-trips through JSON (Redis, export).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Feedback:
    """The explicit feedback a caller gave on one outcome (the latest wins; `quality` is what the learner saw)."""

    quality: float | None  # what a learner sees, in [0, 1]; None for a label alone
    rating: float | None = None
    thumbs: str | None = None
    success: bool | None = None
    label: str | None = None
    comment: str | None = None
    time: float = 0.0
    source: str = "explicit"  # "explicit" (POST /v1/feedback) or "reask" (implicit)
    learned: bool = False  # whether the decision's selector holds this rating (a change revises it: docs/feedback.md)


@dataclass
class Outcome:
    """One routed request: who, which decision and model, the scores behind it, what it cost, how it went."""

    request_id: str
    response_id: str | None = None
    time: float = 0.0
    tenant: str = "anonymous"
    decision: str | None = None
    model: str | None = None
    mode: str | None = None
    signals: dict[str, float] = field(default_factory=dict)
    candidates: dict[str, float] = field(default_factory=dict)
    cost_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    ttft_s: float | None = None
    cache: str | None = None
    status: int = 200
    error: str | None = None
    stream: bool = False
    session: str | None = None
    switched: bool = False
    explored: bool = False
    features: tuple[float, ...] | None = None
    prompt: str | None = None
    door: str = "chat"
    objective: str | None = None  # the request's x-turnout-objective, which the reward's weights follow
    plan: dict[str, Any] | None = None  # a decision's plan: its name and every call (model, role, outcome, cost)
    feedback: Feedback | None = None

    def to_dict(self) -> dict[str, Any]:
        # shallow on purpose: dataclasses.asdict deep-copies every dict and took ~30 µs a record
        data = dict(vars(self))
        data["signals"], data["candidates"] = dict(self.signals), dict(self.candidates)
        if self.features is not None:
            data["features"] = list(self.features)
        if self.feedback is not None:
            data["feedback"] = dict(vars(self.feedback))
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        # Unknown keys are dropped so a record written by a newer version still loads.
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if values.get("features") is not None:
            values["features"] = tuple(float(x) for x in values["features"])
        fb = values.get("feedback")
        if isinstance(fb, dict):
            fb_known = {f.name for f in fields(Feedback)}
            values["feedback"] = Feedback(**{k: v for k, v in fb.items() if k in fb_known})
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """The fields a feedback response and a listing show (no prompt, no feature vector)."""
        data = self.to_dict()
        data.pop("prompt", None)
        data.pop("features", None)
        return data
