"""Header mutation: add headers to the upstream request (tracing, a tenant id for the provider, a routing hint)
and to the response, copy chosen client headers through to the upstream, and drop response headers. Values may
use {decision}, {model}, {request_id} and {caller}. A backend's own headers (auth, content type) always win."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from turnout.context import RoutingContext
from turnout.headers import name_problem, value_problem
from turnout.params import Params
from turnout.plugins.base import Plugin, register

_PROTECTED = {"authorization", "api-key", "x-api-key", "content-type", "content-length", "host"}


class HeaderMutationParams(Params):
    upstream: dict[str, str] = Field(default_factory=dict, description="headers added to the upstream request")
    forward: list[str] = Field(default_factory=list, description="client request headers copied upstream")
    response: dict[str, str] = Field(default_factory=dict, description="headers added to the response")
    remove_response: list[str] = Field(default_factory=list, description="turnout response headers not to send")


@register("header_mutation")
class HeaderMutationPlugin(Plugin):
    Params = HeaderMutationParams

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> "HeaderMutationPlugin":
        from turnout.config import ConfigError, ConfigIssue

        plugin = super().from_config(params, path)
        p = plugin.params
        issues = []
        bad = sorted(h for h in [*p.upstream, *p.forward] if h.lower() in _PROTECTED)
        if bad:
            issues.append(ConfigIssue(f"{path}.upstream", f"{', '.join(bad)} cannot be set here: the backend "
                                                          f"owns its credentials and framing"))
        for field, names in (("upstream", p.upstream), ("response", p.response)):
            for name, value in names.items():
                if problem := name_problem(name) or value_problem(value):
                    issues.append(ConfigIssue(f"{path}.{field}.{name}", problem))
        for field, listed in (("forward", p.forward), ("remove_response", p.remove_response)):
            issues += [ConfigIssue(f"{path}.{field}[{i}]", problem)
                       for i, name in enumerate(listed) if (problem := name_problem(name))]
        if issues:
            raise ConfigError(issues)
        return plugin  # type: ignore[return-value]

    @staticmethod
    def _fill(value: str, ctx: RoutingContext) -> str:
        fields = {"decision": ctx.decision, "model": ctx.model, "request_id": ctx.request_id,
                  "caller": ctx.caller.key_id}
        try:
            filled = value.format(**fields)
        except (KeyError, IndexError, ValueError):
            return value
        # the value was checked at load; what a placeholder brought in (a name from the config) is checked here
        return filled if value_problem(filled) is None else value

    async def before(self, ctx: RoutingContext) -> None:
        for name, value in self.params.upstream.items():
            ctx.upstream_headers[name.lower()] = self._fill(value, ctx)
        for name in self.params.forward:
            if name.lower() in ctx.headers:
                ctx.upstream_headers[name.lower()] = ctx.headers[name.lower()]
        for name, value in self.params.response.items():
            ctx.response_headers[name.lower()] = self._fill(value, ctx)
        for name in self.params.remove_response:
            ctx.response_headers[name.lower()] = ""  # an empty value: the server leaves it out
        return None
