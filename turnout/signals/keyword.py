"""Keyword signal: Aho-Corasick over the conversation text, one pass whatever the number of words."""

from __future__ import annotations

from typing import Literal

import ahocorasick
from pydantic import Field, field_validator

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, off_loop, register

OFF_LOOP_CHARS = 4096  # the worst text this long (an occurrence at every character) takes ~1.4 ms


class KeywordParams(Params):
    words: list[str] | dict[str, float] = Field(description="words, or word → weight")
    case_sensitive: bool = False
    word_boundary: bool = True
    scope: Literal["last_user", "user", "all", "system"] = "last_user"
    min_matches: int = Field(1, ge=1)

    @field_validator("words")
    @classmethod
    def _non_empty(cls, value):
        if not value or any(not str(w).strip() for w in value):
            raise ValueError("needs at least one non-empty word")
        return value


@register("keyword")
class KeywordSignal(Signal):
    """Matched when at least `min_matches` distinct words occur; score = matched weight / total weight."""

    Params = KeywordParams

    def __init__(self, name: str, params: KeywordParams) -> None:
        super().__init__(name, params)
        weights = params.words if isinstance(params.words, dict) else {w: 1.0 for w in params.words}
        self._total = sum(weights.values()) or 1.0
        self._automaton = ahocorasick.Automaton()
        for word, weight in weights.items():
            key = word if params.case_sensitive else word.lower()
            self._automaton.add_word(key, (word, float(weight), len(key)))
        self._automaton.make_automaton()
        self._count = len(weights)

    def _found(self, text: str) -> dict[str, float]:
        if not self.params.case_sensitive:
            text = text.lower()
        found: dict[str, float] = {}
        for end, (word, weight, length) in self._automaton.iter(text):
            if word in found or (self.params.word_boundary and not _at_boundary(text, end - length + 1, end, word)):
                continue
            found[word] = weight
            if len(found) == self._count:  # every word is in: the rest of the text cannot change the answer
                break
        return found

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        text = ctx.text(self.params.scope)
        # one pass, but every occurrence comes back to Python (a word repeated 50,000 times is 50,000 steps):
        # a long text is scanned in a worker thread, so the event loop keeps serving meanwhile
        found = await off_loop(self._found, text) if len(text) > OFF_LOOP_CHARS else self._found(text)
        matched = len(found) >= self.params.min_matches
        return SignalResult(matched, min(1.0, sum(found.values()) / self._total) if found else 0.0,
                            {"words": sorted(found)})


def _at_boundary(text: str, start: int, end: int, word: str) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end + 1] if end + 1 < len(text) else " "
    # a word that itself starts/ends with a non-word character ("def ", "##") sets its own boundary
    left_ok = not word[0].isalnum() or not (before.isalnum() or before == "_")
    right_ok = not word[-1].isalnum() or not (after.isalnum() or after == "_")
    return left_ok and right_ok
