"""Jailbreak guard, with the classifier of the `jailbreak` signal (shipped, trained on llm-warden's labelled
prompts; or your own `artifact`): a request scoring at least `threshold` is refused before any backend call —
with an OpenAI-shaped error (`action: error`, the default) or an ordinary assistant answer (`action: answer`).
With `check_response: true` the answer is scored too (a model talked into echoing an injection) and replaced
by the refusal; a streamed answer is then held back until it is complete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field

from turnout.completions import assemble_completion, completion_as_chunks
from turnout.context import RoutingContext, _text_of
from turnout.errors import TurnoutError
from turnout.models.classifier import load_classifier
from turnout.models.encoders import get_encoder
from turnout.models.request import INLINE, INLINE_CHARS, request_embedding
from turnout.params import Params
from turnout.plugins.base import Plugin, register
from turnout.plugins.fast_response import canned_completion
from turnout.signals.base import off_loop


class JailbreakPluginParams(Params):
    threshold: float = Field(0.7, ge=0, le=1, description=(
        "refuse at this probability of a jailbreak; 0.7 keeps 89 % of the held-out jailbreaks with no false alarm "
        "on the held-out benign prompts, 0.5 catches 96 % but flags some short everyday questions"))
    action: Literal["error", "answer"] = "error"
    message: str = "This request was refused: it looks like an attempt to get around the assistant's rules."
    status: int = Field(400, ge=400, le=599)
    code: str = "jailbreak_detected"
    scope: Literal["last_user", "user", "all"] = Field("user", description="the messages scored")
    check_response: bool = False
    artifact: str | None = Field(None, description="a classifier .npz with a 'jailbreak' label; default: shipped")


@register("jailbreak")
class JailbreakPlugin(Plugin):
    Params = JailbreakPluginParams
    fail_closed = True

    def __init__(self, params: JailbreakPluginParams) -> None:
        super().__init__(params)
        self.model = load_classifier(params.artifact or "builtin:jailbreak")
        if "jailbreak" not in self.model.labels:
            raise ValueError(f"the classifier's labels ({', '.join(self.model.labels)}) have no 'jailbreak'")

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> "JailbreakPlugin":
        from turnout.config import ConfigError, ConfigIssue

        try:
            return super().from_config(params, path)  # type: ignore[return-value]
        except (OSError, ValueError) as exc:
            raise ConfigError([ConfigIssue(f"{path}.artifact", str(exc))]) from None

    def _refusal(self, ctx: RoutingContext, probability: float) -> dict[str, Any]:
        ctx.response_headers["x-turnout-guard"] = f"jailbreak p={probability:.3f}"
        if self.params.action == "error":
            raise TurnoutError(self.params.message, status=self.params.status, type="invalid_request_error",
                               code=self.params.code)
        return canned_completion(ctx, self.params.message, ctx.model or "turnout")

    async def before(self, ctx: RoutingContext) -> dict[str, Any] | None:
        vector = await request_embedding(ctx, self.model.encoder, self.params.scope)
        p = self.model.predict(vector)[2].get("jailbreak", 0.0)
        return self._refusal(ctx, p) if p >= self.params.threshold else None

    async def _response_probability(self, response: dict[str, Any]) -> float:
        texts = [_text_of((c.get("message") or {}).get("content")) for c in response.get("choices") or []]
        text = "\n".join(t for t in texts if t)
        if not text:
            return 0.0
        encoder = get_encoder(self.model.encoder)
        if self.model.encoder in INLINE and len(text) <= INLINE_CHARS:
            vectors = encoder.encode([text])
        else:  # milliseconds (tens with the ONNX encoder): off the event loop
            vectors = await off_loop(encoder.encode, [text])
        return self.model.predict(vectors[0])[2].get("jailbreak", 0.0)

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        if self.params.check_response and ctx.answered_by is None:
            p = await self._response_probability(response)
            if p >= self.params.threshold:
                return self._refusal(ctx, p)
        return response

    def wrap_stream(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        return self._checked(ctx, batches) if self.params.check_response else batches

    async def _checked(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        held = [chunk async for batch in batches for chunk in batch]
        whole = assemble_completion(held)
        p = await self._response_probability(whole) if whole else 0.0
        if p >= self.params.threshold:
            include_usage = bool((ctx.body.get("stream_options") or {}).get("include_usage"))
            yield completion_as_chunks(self._refusal(ctx, p), include_usage)
            return
        yield held
