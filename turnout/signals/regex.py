"""Regex signal: any of a set of regular expressions found in the conversation.

Patterns run on RE2 (`google-re2`): matching takes time linear in the text whatever the pattern, so neither a
pattern nor a prompt can stall the server. RE2 has no lookarounds and no backreferences; a pattern that uses
them is a config error naming it (`signals.NAME.patterns[i]`), never a silent fallback to a backtracking
engine."""

from __future__ import annotations

from typing import Any, Literal

import re2
from pydantic import Field, field_validator

from turnout.config import ConfigError, ConfigIssue
from turnout.context import RoutingContext, SignalResult
from turnout.params import Params, validate_params
from turnout.signals.base import Signal, off_loop, register

OFF_LOOP_BYTES = 65_536  # a longer scan runs in a worker thread (RE2 releases the GIL while it matches)


class RegexParams(Params):
    patterns: list[str] | dict[str, str] = Field(description="RE2 patterns, or label → pattern")
    scope: Literal["last_user", "user", "all", "system"] = "last_user"
    ignore_case: bool = False
    max_chars: int = Field(200_000, ge=1, description="scan at most this many characters (from the end)")

    @field_validator("patterns")
    @classmethod
    def _non_empty(cls, value):
        if not value:
            raise ValueError("needs at least one pattern")
        return value


def _where(patterns: list[str] | dict[str, str], key: Any) -> str:
    return f"patterns[{key}]" if isinstance(patterns, list) else f"patterns.{key}"


def compile_patterns(params: RegexParams) -> tuple[list[tuple[str, Any]], list[tuple[str, str]]]:
    """(label, compiled pattern) pairs, and (place, problem) for each pattern RE2 cannot take."""
    options = re2.Options()
    options.case_sensitive = not params.ignore_case
    options.log_errors = False  # the error is reported with the pattern's path instead
    items = params.patterns.items() if isinstance(params.patterns, dict) else enumerate(params.patterns)
    compiled, problems = [], []
    for key, pattern in items:
        try:
            # bytes: the text is encoded once per request, not once per pattern
            compiled.append((pattern if isinstance(params.patterns, list) else key,
                             re2.compile(pattern.encode("utf-8", "surrogatepass"), options)))
        except re2.error as exc:
            reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            problem = f"RE2 cannot compile {pattern!r}: {reason} (RE2 has no lookarounds or backreferences)"
            problems.append((_where(params.patterns, key), problem))
    return compiled, problems


@register("regex")
class RegexSignal(Signal):
    """Matched when any pattern is found; score = share of patterns found."""

    Params = RegexParams

    def __init__(self, name: str, params: RegexParams) -> None:
        super().__init__(name, params)
        self._compiled, problems = compile_patterns(params)
        if problems:
            raise ValueError("; ".join(f"{where}: {problem}" for where, problem in problems))

    @classmethod
    def from_config(cls, name: str, params: dict[str, Any], path: str) -> RegexSignal:
        checked = validate_params(cls.Params, params, path)
        problems = compile_patterns(checked)[1]
        if problems:
            raise ConfigError([ConfigIssue(f"{path}.{where}", problem) for where, problem in problems])
        return cls(name, checked)

    def _found(self, data: bytes) -> list[str]:
        return [label for label, pattern in self._compiled if pattern.search(data) is not None]

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        data = ctx.text(self.params.scope)[-self.params.max_chars:].encode("utf-8", "replace")
        found = await off_loop(self._found, data) if len(data) * len(self._compiled) > OFF_LOOP_BYTES else \
            self._found(data)
        return SignalResult(bool(found), len(found) / len(self._compiled), {"matched": found} if found else {})
