"""The Plugin interface and its registry. Plugins run per decision, in the order the config lists them:
`before` may rewrite the request or answer at once; `after` may rewrite the response."""

from __future__ import annotations

from typing import Any, ClassVar

from turnout.context import RoutingContext
from turnout.params import Params, validate_params
from turnout.registry import Registry


class Plugin:
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Params) -> None:
        self.params = params

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> "Plugin":
        return cls(validate_params(cls.Params, params, path))

    async def before(self, ctx: RoutingContext) -> dict[str, Any] | None:
        """Rewrite ctx.body in place, or return a complete response to answer without a backend call."""
        return None

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        return response


plugins: Registry[Plugin] = Registry("plugin", attr="name")
register = plugins.register

