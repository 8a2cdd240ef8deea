"""The Plugin interface and its registry. Plugins run in the order the config lists them (global ones first,
then the decision's): `before` may rewrite the request, answer at once or refuse; `after` may rewrite a
complete response; `wrap_stream` sees (and may rewrite) a streamed one, batch by batch.

A plugin that raises something other than a TurnoutError has failed: a safety plugin (`fail_closed`) then
refuses the request, any other is skipped and the request goes on. Both are logged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from turnout.context import RoutingContext
from turnout.params import Params, validate_params
from turnout.registry import Registry


class Plugin:
    name: ClassVar[str]
    Params: ClassVar[type[Params]] = Params
    #: True for guards (PII, jailbreak): when the plugin itself breaks, refuse rather than let the request through
    fail_closed: ClassVar[bool] = False

    def __init__(self, params: Params) -> None:
        self.params = params

    @classmethod
    def from_config(cls, params: dict[str, Any], path: str) -> "Plugin":
        return cls(validate_params(cls.Params, params, path))

    def referenced_models(self) -> list[str]:
        """Model names in the params (checked against the config's models when the router is built)."""
        return []

    def referenced_signals(self) -> list[str]:
        """Signal names the plugin reads (evaluated for every request, like those the decisions reference)."""
        return []

    async def before(self, ctx: RoutingContext) -> dict[str, Any] | None:
        """Rewrite the request (ctx.set_body), or return a complete response to answer without a backend call."""
        return None

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        return response

    def wrap_stream(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        """The streamed response, batch by batch (each chunk the JSON text of a chat.completion.chunk)."""
        return batches


plugins: Registry[Plugin] = Registry("plugin", attr="name")
register = plugins.register
