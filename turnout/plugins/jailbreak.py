"""Jailbreak / prompt-injection guard, with the detector of the `jailbreak` signal (turnout.models.injection;
or your own `artifact`): a request scoring at least `threshold` in any message it covers (by default every
message: the user's, tool results, system and assistant messages, every text-bearing part type) is refused
before any backend call — with an OpenAI-shaped error (`action: error`, the default) or an ordinary assistant
answer (`action: answer`). With `check_response: true` the answer is scored too (a model talked into echoing an
injection) and replaced by the refusal; a streamed answer is then held back until it is complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from turnout.completions import assemble_completion, completion_as_chunks
from turnout.context import RoutingContext
from turnout.errors import TurnoutError
from turnout.models.injection import EmbeddingClassifierDetector, load_detector
from turnout.models.injection_request import request_injection, score_items
from turnout.models.injection_text import message_texts
from turnout.params import Params
from turnout.plugins.base import Plugin, register
from turnout.plugins.fast_response import canned_completion


class JailbreakPluginParams(Params):
    threshold: float | None = Field(None, ge=0, le=1, description=(
        "refuse at this probability of a jailbreak or injection; default: the detector's own threshold, calibrated "
        "on a held-out multilingual split to keep false alarms there at or under 2 % (0.7 for an old "
        "embedding-classifier artifact)"))
    action: Literal["error", "answer"] = "error"
    message: str = "This request was refused: it looks like an attempt to get around the assistant's rules."
    status: int = Field(400, ge=400, le=599)
    code: str = "jailbreak_detected"
    scope: Literal["last_user", "user", "all"] = Field("all", description=(
        "the messages scored: all (every role, tool results included), user (user and tool messages), last_user"))
    check_response: bool = False
    artifact: str | None = Field(None, description=(
        "builtin:jailbreak (default), builtin:jailbreak-embedding (the classifier it replaced), or an .npz path "
        "in either format (an old classifier needs a 'jailbreak' label)"))


@register("jailbreak")
class JailbreakPlugin(Plugin):
    Params = JailbreakPluginParams
    fail_closed = True

    def __init__(self, params: JailbreakPluginParams) -> None:
        super().__init__(params)
        self.artifact = params.artifact or "builtin:jailbreak"
        self.detector = load_detector(self.artifact)
        if params.threshold is not None:
            self.threshold = params.threshold
        else:  # an old embedding classifier keeps the guard's old default
            self.threshold = 0.7 if isinstance(self.detector, EmbeddingClassifierDetector) else self.detector.threshold

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> JailbreakPlugin:
        from turnout.config import ConfigError, ConfigIssue

        try:
            return super().from_config(params, path)  # type: ignore[return-value]
        except (OSError, ValueError) as exc:
            raise ConfigError([ConfigIssue(f"{path}.artifact", str(exc))]) from None

    def _refusal(self, ctx: RoutingContext, probability: float, where: dict[str, Any]) -> dict[str, Any]:
        role = f" role={where['role']}" if "role" in where else ""
        ctx.response_headers["x-turnout-guard"] = f"jailbreak p={probability:.3f}{role}"
        if self.params.action == "error":
            raise TurnoutError(self.params.message, status=self.params.status, type="invalid_request_error",
                               code=self.params.code)
        return canned_completion(ctx, self.params.message, ctx.model or "turnout")

    async def before(self, ctx: RoutingContext) -> dict[str, Any] | None:
        p, where = await request_injection(ctx, self.detector, self.artifact, self.params.scope)
        return self._refusal(ctx, p, where) if p >= self.threshold else None

    async def _response_probability(self, response: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        items = message_texts([c.get("message") or {} for c in response.get("choices") or []])
        return await score_items(self.detector, items, self.artifact) if items else (0.0, {})

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        if self.params.check_response and ctx.answered_by is None:
            p, where = await self._response_probability(response)
            if p >= self.threshold:
                return self._refusal(ctx, p, where)
        return response

    def wrap_stream(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        return self._checked(ctx, batches) if self.params.check_response else batches

    async def _checked(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        held = [chunk async for batch in batches for chunk in batch]
        whole = assemble_completion(held)
        p, where = await self._response_probability(whole) if whole else (0.0, {})
        if p >= self.threshold:
            include_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
            yield completion_as_chunks(self._refusal(ctx, p, where), include_usage)
            return
        yield held
