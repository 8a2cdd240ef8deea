"""Structure signal: code, JSON, math notation or tables in the last user message."""

from __future__ import annotations

import re

import ahocorasick
from typing import Literal

from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register

Kind = Literal["code", "json", "math", "table"]

# Each kind is a list of (triggers, pattern): the pattern runs only when one of its trigger substrings is in
# the text (a C-speed `in`), so plain prose costs a few substring scans instead of regex passes.
_M = re.MULTILINE
_RULES: dict[str, list[tuple[tuple[str, ...], re.Pattern[str] | None]]] = {
    "code": [
        (("```",), None),
        (("\n    ", "\n\t"), re.compile(r"^(?: {4}|\t)[^\s]", _M)),
        (("def ", "class ", "import ", "#include", "function ", "const ", "let ", "var ", "fn ", "func ", "package ",
          "SELECT ", "INSERT ", "UPDATE ", "CREATE TABLE", "public ", "private "),
         re.compile(r"^[ \t]*(?:def |class |import |from [\w.]+ import |#include|public |private |function |const |"
                    r"let |var |fn |func |package |SELECT |INSERT |UPDATE |CREATE TABLE)", _M)),
        ((";", "{", "}"), re.compile(r"[;{}][ \t]*$", _M)),
        (("=>", "->"), re.compile(r"=>|->[ \t]*\w")),
        ((")",), re.compile(r"\)[ \t]*[{:;][ \t]*$", _M)),
    ],
    "json": [
        (('"',), re.compile(r'[{\[][ \t\n]{0,20}"[^"\n]{1,80}"[ \t]{0,5}:')),
    ],
    "math": [
        (("\\",), re.compile(r"\\(?:frac|sqrt|int|sum|prod|lim|alpha|beta|theta|pi|cdot|times|leq|geq|neq|infty|"
                               r"partial)\b")),
        (("$",), re.compile(r"\$[^$\n]{1,200}\$")),
        (("∫", "∑", "∏", "√", "∞", "≤", "≥", "≠", "≈", "±", "∂", "∇"), None),
        (("^",), re.compile(r"[\w)]\s?\^\s?[\d(]")),
        (("=",), re.compile(r"\d\s?[+\-*/×^]\s?\d{1,12}\s?=|[a-z]\s?=\s?\d|\d\s?=\s?[a-z]\b", re.IGNORECASE)),
        (("sin(", "cos(", "tan(", "log(", "ln(", "exp(", "sin (", "cos (", "log ("), None),
    ],
    "table": [
        (("|",), re.compile(r"^[ \t]*\|[^\n]*\|[ \t]*\n[ \t]*\|?[ \t]*:?-{3,}", _M)),
    ],
}


def _trigger_automaton() -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton()
    for triggers in {t for rules in _RULES.values() for triggers, _ in rules for t in triggers}:
        automaton.add_word(triggers, triggers)
    automaton.make_automaton()
    return automaton


_TRIGGERS = _trigger_automaton()


def present_triggers(text: str) -> set[str]:
    """Every trigger substring in the text, found in one Aho-Corasick pass."""
    return {t for _, t in _TRIGGERS.iter(text)}


def has_structure(kind: str, text: str, present: set[str] | None = None) -> bool:
    present = present_triggers(text) if present is None else present
    for triggers, pattern in _RULES[kind]:
        if not present.isdisjoint(triggers) and (pattern is None or pattern.search(text)):
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
        found = [kind for kind in self.params.kinds if has_structure(kind, text, present)]
        return SignalResult(bool(found), len(found) / len(self.params.kinds), {"found": found} if found else {})
