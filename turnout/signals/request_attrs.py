"""Signals on who is asking and how: caller roles, request headers, request metadata and per-request
preferences (`x-turnout-objective: cost|quality|latency`)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

import re2
from pydantic import Field, field_validator, model_validator

from turnout.context import OBJECTIVE_HEADER, RoutingContext, SignalResult, requested_objective
from turnout.params import Params
from turnout.signals.base import Signal, register


class RoleParams(Params):
    roles: list[str] = Field(min_length=1)


@register("role")
class RoleSignal(Signal):
    """Matched when the caller (from its API key) has any of `roles`."""

    Params = RoleParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        held = sorted(set(self.params.roles) & set(ctx.caller.roles))
        return SignalResult(bool(held), 1.0 if held else 0.0, {"roles": held})


class ValueMatchParams(Params):
    values: list[str] | None = Field(None, description="accepted values (case-insensitive); none: any value")
    pattern: str | None = Field(None, description="an RE2 regular expression the value must match")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value):
        if value is not None:
            try:
                _compiled(value)
            except re2.error as exc:
                reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
                raise ValueError(f"RE2 cannot compile it: {reason} (no lookarounds or backreferences)") from None
        return value

    def accepts(self, value: str) -> bool:
        if self.values is not None and value.lower() not in {v.lower() for v in self.values}:
            return False
        return self.pattern is None or _compiled(self.pattern).search(value) is not None


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> Any:
    # RE2: a client chooses the value (a header, a metadata field), so the match must take linear time
    options = re2.Options()
    options.log_errors = False
    return re2.compile(pattern, options)


class HeaderParams(ValueMatchParams):
    name: str = Field(min_length=1, description="the HTTP header")

    @field_validator("name")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()


@register("header")
class HeaderSignal(Signal):
    """Matched when the request carries header `name` (with an accepted value)."""

    Params = HeaderParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        value = ctx.headers.get(self.params.name)
        matched = value is not None and self.params.accepts(value)
        return SignalResult(matched, 1.0 if matched else 0.0, {"value": value} if value is not None else {})


class MetadataParams(ValueMatchParams):
    key: str = Field(min_length=1, description="key of the request's `metadata` object; `user` for the user field")


@register("metadata")
class MetadataSignal(Signal):
    """Matched when the request body's `metadata[key]` (or `user`) has an accepted value."""

    Params = MetadataParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        if self.params.key == "user":
            value = ctx.body.get("user")
        else:
            metadata = ctx.body.get("metadata")
            value = metadata.get(self.params.key) if isinstance(metadata, dict) else None
        matched = isinstance(value, (str, int, float)) and self.params.accepts(str(value))
        return SignalResult(matched, 1.0 if matched else 0.0, {"value": value} if value is not None else {})


Objective = Literal["cost", "quality", "latency", "balanced"]


class UserFlagsParams(Params):
    header: str = Field(OBJECTIVE_HEADER)
    objectives: list[Objective] = Field(min_length=1, description="matched when the request asks for one of these")

    @model_validator(mode="after")
    def _lower(self):
        object.__setattr__(self, "header", self.header.lower())
        return self


@register("user_flags")
class UserFlagsSignal(Signal):
    """The caller's stated preference for this request, e.g. `x-turnout-objective: cost`."""

    Params = UserFlagsParams

    async def evaluate(self, ctx: RoutingContext) -> SignalResult:
        objective = requested_objective(ctx, self.params.header)
        matched = objective in self.params.objectives
        return SignalResult(matched, 1.0 if matched else 0.0, {"objective": objective})
