"""A decision's `when`: the Boolean rule over signals ({all: [...]}, {any: [...]}, {not: RULE}, {signal: NAME}),
as pydantic models, and Strict, the base of every config model. A leaf module: imports nothing else from turnout."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _rule_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = [k for k in ("all", "any", "not", "signal") if k in value]
        return keys[0] if len(keys) == 1 else None
    if isinstance(value, BaseModel):
        return {AllRule: "all", AnyRule: "any", NotRule: "not", SignalRule: "signal"}.get(type(value))
    return None


class SignalRule(Strict):
    signal: str
    min_score: float | None = None


class AllRule(Strict):
    all: list[Rule] = Field(min_length=1)


class AnyRule(Strict):
    any: list[Rule] = Field(min_length=1)


class NotRule(Strict):
    not_: Rule = Field(alias="not")


Rule = Annotated[
    Annotated[AllRule, Tag("all")] | Annotated[AnyRule, Tag("any")] | Annotated[NotRule, Tag("not")] | Annotated[SignalRule, Tag("signal")],
    Discriminator(
        _rule_tag,
        custom_error_type="invalid_rule",
        custom_error_message="a rule is exactly one of {all: [...]}, {any: [...]}, {not: RULE}, {signal: NAME}",
    ),
]
for _cls in (AllRule, AnyRule, NotRule):
    _cls.model_rebuild()
