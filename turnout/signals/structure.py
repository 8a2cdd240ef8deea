"""Structure signal: code, JSON, math notation or tables in the last user message.

The patterns run on RE2 (`google-re2`), in time linear in the text: a prompt built to make a backtracking
engine retry (long runs of spaces, pipes, dollar signs) costs no more than any other of its length."""

from __future__ import annotations

from typing import Any, Literal

import ahocorasick
import re2
from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register

Kind = Literal["code", "json", "math", "table"]


def _re(pattern: str, flags: str = "") -> Any:
    """An RE2 pattern over UTF-8 bytes (the text is encoded once per request, not once per pattern)."""
    return re2.compile((f"(?{flags})" if flags else "").encode() + pattern.encode("utf-8"))


# Each kind is a list of (triggers, pattern): the pattern runs only when one of its trigger substrings is in
# the text (one Aho-Corasick pass), so plain prose costs no regex pass at all.
_M = "m"
_RULES: dict[str, list[tuple[tuple[str, ...], Any]]] = {
    "code": [
        (("```",), None),
        (("\n    ", "\n\t"), _re(r"^(?: {4}|\t)[^\s]", _M)),
        (("def ", "class ", "import ", "#include", "function ", "const ", "let ", "var ", "fn ", "func ", "package ",
          "SELECT ", "INSERT ", "UPDATE ", "CREATE TABLE", "public ", "private "),
         _re(r"^[ \t]*(?:def |class |import |from [\w.]+ import |#include|public |private |function |const |"
             r"let |var |fn |func |package |SELECT |INSERT |UPDATE |CREATE TABLE)", _M)),
        ((";", "{", "}"), _re(r"[;{}][ \t]*$", _M)),
        (("=>", "->"), _re(r"=>|->[ \t]*\w")),
        ((")",), _re(r"\)[ \t]*[{:;][ \t]*$", _M)),
    ],
    "json": [
        (('"',), _re(r'[{\[][ \t\n]{0,20}"[^"\n]{1,80}"[ \t]{0,5}:')),
    ],
    "math": [
        (("\\",), _re(r"\\(?:frac|sqrt|int|sum|prod|lim|alpha|beta|theta|pi|cdot|times|leq|geq|neq|infty|"
                        r"partial)\b")),
        (("$",), _re(r"\$[^$\n]{1,200}\$")),
        (("∫", "∑", "∏", "√", "∞", "≤", "≥", "≠", "≈", "±", "∂", "∇"), None),
        (("^",), _re(r"[\w)]\s?\^\s?[\d(]")),
        (("=",), _re(r"\d\s?[+\-*/×^]\s?\d{1,12}\s?=|[a-z]\s?=\s?\d|\d\s?=\s?[a-z]\b", "i")),
        (("sin(", "cos(", "tan(", "log(", "ln(", "exp(", "sin (", "cos (", "log ("), None),
    ],
    "table": [
        (("|",), _re(r"^[ \t]*\|[^\n]*\|[ \t]*\n[ \t]*\|?[ \t]*:?-{3,}", _M)),
    ],
}


def _trigger_automaton() -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for trigger in {t for rules in _RULES.values() for triggers, _ in rules for t in triggers}:
        automaton.add_word(trigger, trigger)
    automaton.make_automaton()
    return automaton


_TRIGGERS = _trigger_automaton()


def present_triggers(text: str) -> set[str]:
    """Every trigger substring in the text, found in one Aho-Corasick pass."""
    return {t for _, t in _TRIGGERS.iter(text)}


def has_structure(kind: str, text: str, present: set[str] | None = None, data: bytes | None = None) -> bool:
    present = present_triggers(text) if present is None else present
    for triggers, pattern in _RULES[kind]:
        if not present.isdisjoint(triggers):
            if pattern is None:
                return True
            data = text.encode("utf-8", "replace") if data is None else data
            if pattern.search(data) is not None:
                return True
    return False


class StructureParams(Params):
    kinds: list[Kind] = Field(default_factory=lambda: ["code"], min_length=1)
    scope: Literal["last_user", "user", "all"] = "last_user"
    max_chars: int = Field(50_000, ge=1, description="look at most at this many characters (from the end)")


@register("structure")
class StructureSignal(Signal):
    """Matched when any of `kinds` is present; score = share of `kinds` present."""

    Params = StructureParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        text = ctx.text(self.params.scope)[-self.params.max_chars:]
        present = present_triggers(text)
        data = text.encode("utf-8", "replace") if present else b""
        found = [kind for kind in self.params.kinds if has_structure(kind, text, present, data)]
        return SignalResult(bool(found), len(found) / len(self.params.kinds), {"found": found} if found else {})
