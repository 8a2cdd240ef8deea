"""Conversation signal: the shape of the conversation (turns, tools, tool results, images, audio)."""

from __future__ import annotations

from pydantic import Field, model_validator

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register


def conversation_facts(ctx: RoutingContext) -> dict[str, int | bool]:
    if "conversation" in ctx.cache:
        return ctx.cache["conversation"]
    messages = [m for m in ctx.messages if isinstance(m, dict)]
    kinds: set[str] = set()
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            kinds.update(p.get("type", "") for p in content if isinstance(p, dict))
    facts = {
        "turns": sum(1 for m in messages if m.get("role") == "user"),
        "messages": len(messages),
        "has_tools": bool(ctx.body.get("tools") or ctx.body.get("functions")),
        "has_tool_results": any(m.get("role") in ("tool", "function") for m in messages),
        "has_images": bool(kinds & {"image_url", "image", "input_image"}),
        "has_audio": bool(kinds & {"input_audio", "audio"}),
        "has_files": bool(kinds & {"file", "input_file"}),
    }
    ctx.cache["conversation"] = facts
    return facts


class ConversationParams(Params):
    min_turns: int | None = Field(None, ge=0, description="user turns, at least")
    max_turns: int | None = Field(None, ge=0)
    has_tools: bool | None = None
    has_tool_results: bool | None = None
    has_images: bool | None = None
    has_audio: bool | None = None
    has_files: bool | None = None

    @model_validator(mode="after")
    def _some_condition(self):
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("set at least one condition (min_turns, max_turns, has_tools, has_images, ...)")
        return self


@register("conversation")
class ConversationSignal(Signal):
    """Matched when every condition set holds; score = share of conditions that hold."""

    Params = ConversationParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        facts = conversation_facts(ctx)
        checks = []
        p = self.params
        if p.min_turns is not None:
            checks.append(facts["turns"] >= p.min_turns)
        if p.max_turns is not None:
            checks.append(facts["turns"] <= p.max_turns)
        for flag in ("has_tools", "has_tool_results", "has_images", "has_audio", "has_files"):
            wanted = getattr(p, flag)
            if wanted is not None:
                checks.append(facts[flag] == wanted)
        return SignalResult(all(checks), sum(checks) / len(checks), dict(facts))
