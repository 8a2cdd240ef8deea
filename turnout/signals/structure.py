"""Structure signal: code, JSON, math notation or tables in the last user message."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from turnout.context import RoutingContext, SignalResult
from turnout.params import Params
from turnout.signals.base import Signal, register

Kind = Literal["code", "json", "math", "table"]

_CODE = re.compile(
    r"```|^(?: {4}|\t)\S|^\s*(?:def |class |import |from \S+ import |#include|public |private |function |const |let |"
    r"var |fn |func |package |SELECT |INSERT |UPDATE |CREATE TABLE)|[;{}]\s*$|=>|->\s*\w|\w+\([^()]*\)\s*[{:;]",
    re.MULTILINE)
_JSON = re.compile(r'[{\[]\s*"[^"\n]{1,80}"\s*:', re.MULTILINE)
_MATH = re.compile(
    r"\\(?:frac|sqrt|int|sum|prod|lim|alpha|beta|theta|pi|cdot|times|leq|geq|neq|infty|partial)\b|\$[^$\n]+\$|"
    r"[∫∑∏√∞≤≥≠≈±∂∇]|\b\d+\s*[x×*/^]\s*\d+\s*[=+\-]|\b[a-z]\s*\^\s*\d|\b(?:sin|cos|tan|log|ln)\s*\(|"
    r"\b\d+\s*[+\-*/]\s*\d+\s*=", re.IGNORECASE)
_TABLE = re.compile(r"^\s*\|.*\|\s*$\n^\s*\|?\s*:?-{3,}", re.MULTILINE)
_PATTERNS = {"code": _CODE, "json": _JSON, "math": _MATH, "table": _TABLE}


class StructureParams(Params):
    kinds: list[Kind] = Field(default_factory=lambda: ["code"], min_length=1)
    scope: Literal["last_user", "user", "all"] = "last_user"
    max_chars: int = Field(100_000, ge=1, description="look at most at this many characters (from the end)")


@register("structure")
class StructureSignal(Signal):
    """Matched when any of `kinds` is present; score = share of `kinds` present."""

    Params = StructureParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        text = ctx.text(self.params.scope)[-self.params.max_chars:]
        found = [kind for kind in self.params.kinds if _PATTERNS[kind].search(text)]
        return SignalResult(bool(found), len(found) / len(self.params.kinds), {"found": found} if found else {})
