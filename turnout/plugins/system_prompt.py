"""System prompt plugin: replace, prepend to or append to the system message of a request."""

from __future__ import annotations

from typing import Literal

from turnout.context import RoutingContext, _text_of
from turnout.params import Params
from turnout.plugins.base import Plugin, register


class SystemPromptParams(Params):
    text: str
    mode: Literal["replace", "prepend", "append"] = "prepend"


@register("system_prompt")
class SystemPromptPlugin(Plugin):
    Params = SystemPromptParams

    async def before(self, ctx: RoutingContext) -> None:
        messages = list(ctx.messages)
        text, mode = self.params.text, self.params.mode
        system = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") in ("system", "developer")]
        if not system:
            messages.insert(0, {"role": "system", "content": text})
        else:
            first = system[0]
            current = _text_of(messages[first].get("content"))
            merged = {"replace": text, "prepend": f"{text}\n\n{current}", "append": f"{current}\n\n{text}"}[mode]
            messages[first] = {**messages[first], "content": merged}
            if mode == "replace":
                messages = [m for i, m in enumerate(messages) if i not in system[1:]]
        ctx.set_body({**ctx.body, "messages": messages})
        return None
