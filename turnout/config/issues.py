"""Config problems as (path, message) pairs, and the exception that carries a list of them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

if TYPE_CHECKING:
    from turnout.config.salvage import Partial


@dataclass(frozen=True)
class ConfigIssue:
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"
    # (kind, name) when the issue is a reference to an undeclared name: when that name's own entry was
    # rejected by the schema, the reference is no second problem and is left out
    refers: tuple[str, str] | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """Every problem found. `partial` is the part of the file that did parse (entries the schema rejected left
    out), so the next stage (compiling components) can still check it and report its problems in the same run."""

    def __init__(self, issues: Sequence[ConfigIssue], partial: Partial | None = None) -> None:
        self.issues = list(issues)
        self.partial = partial
        super().__init__("\n".join(str(i) for i in self.issues))


def format_path(loc: Iterable[object]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def unknown_name(what: str, name: str, options: Iterable[str]) -> str:
    options = sorted(options)
    hint = did_you_mean(name, options)
    return f"unknown {what} '{name}'{hint} (valid: {', '.join(options) or 'none'})"


def unknown_ref(path: str, what: str, name: str, options: Iterable[str]) -> ConfigIssue:
    """An issue for a reference to a name that is not declared."""
    return ConfigIssue(path, unknown_name(what, name, options), refers=(what, name))


def clean_loc(loc: tuple[object, ...]) -> list[object]:
    # pydantic puts the union tag ("all", "any", "not", "signal") after every field that holds a rule;
    # drop those tags so paths read like the YAML: decisions[0].when.all[1].signal
    cleaned: list[object] = []
    expect_tag = False
    for part in loc:
        if expect_tag and part in _RULE_TAGS:
            expect_tag = False
            continue
        cleaned.append(part)
        expect_tag = part in ("when", "not") or (
            isinstance(part, int) and len(cleaned) >= 2 and cleaned[-2] in ("all", "any")
        )
    return cleaned


_RULE_TAGS = ("all", "any", "not", "signal")


def from_validation_error(exc: ValidationError, prefix: tuple[object, ...] = (), fields_of=None) -> list[ConfigIssue]:
    """Turn pydantic errors into issues with YAML paths and 'did you mean' hints for unknown keys."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = clean_loc(tuple(prefix) + tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            hint = did_you_mean(key, fields_of(loc[:-1]) if fields_of else [])
            issues.append(ConfigIssue(format_path(loc[:-1]), f"unknown key '{key}'{hint}"))
            continue
        msg = err["msg"]
        if err["type"] == "missing":
            msg = "required but missing"
        issues.append(ConfigIssue(format_path(loc), msg))
    return issues
