"""Regex signal: any of a set of regular expressions found in the conversation."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register


class RegexParams(Params):
    patterns: list[str] | dict[str, str] = Field(description="patterns, or label → pattern")
    scope: Literal["last_user", "user", "all", "system"] = "last_user"
    ignore_case: bool = Field(False, description="case-insensitive patterns cost ~5x more on long prompts")
    max_chars: int = Field(200_000, ge=1, description="scan at most this many characters (from the end)")

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value):
        items = value.items() if isinstance(value, dict) else enumerate(value)
        if not value:
            raise ValueError("needs at least one pattern")
        for key, pattern in items:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"pattern {key!r} does not compile: {exc}") from None
        return value


@register("regex")
class RegexSignal(Signal):
    """Matched when any pattern is found; score = share of patterns found."""

    Params = RegexParams

    def __init__(self, name: str, params: RegexParams) -> None:
        super().__init__(name, params)
        items = params.patterns.items() if isinstance(params.patterns, dict) else \
            ((p, p) for p in params.patterns)
        flags = re.IGNORECASE if params.ignore_case else 0
        self._compiled = [(label, re.compile(pattern, flags)) for label, pattern in items]

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        text = ctx.text(self.params.scope)[-self.params.max_chars:]
        found = [label for label, pattern in self._compiled if pattern.search(text)]
        return SignalResult(bool(found), len(found) / len(self._compiled), {"matched": found} if found else {})
