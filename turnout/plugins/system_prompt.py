"""System prompt plugin: replace, prepend to or append to the system message of a request. The text may name
what routing found: `{{ decision }}`, `{{ model }}`, `{{ signal.NAME }}` (true/false), `{{ signal.NAME.score }}`
and any detail of a signal, e.g. `{{ signal.lang.language }}` or `{{ signal.topic.domain }}`."""

from __future__ import annotations

import re
from typing import Literal

from turnout.context import RoutingContext, _text_of
from turnout.params import Params
from turnout.plugins.base import Plugin, register

_FIELD = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


class SystemPromptParams(Params):
    text: str
    mode: Literal["replace", "prepend", "append"] = "prepend"


def render(template: str, ctx: RoutingContext) -> str:
    def value(match: re.Match[str]) -> str:
        parts = match.group(1).split(".")
        if parts == ["decision"]:
            return ctx.decision
        if parts == ["model"]:
            return ctx.model
        if parts[0] == "signal" and len(parts) in (2, 3):
            result = ctx.signals.get(parts[1])
            if result is None:
                return ""
            if len(parts) == 2:
                return "true" if result.matched else "false"
            if parts[2] == "score":
                return f"{result.score:.3g}"
            return str(result.detail.get(parts[2], ""))
        return match.group(0)

    return _FIELD.sub(value, template) if "{{" in template else template


def template_signals(template: str) -> list[str]:
    """The signal names a template reads ({{ signal.NAME... }})."""
    return sorted({m.group(1).split(".")[1] for m in _FIELD.finditer(template) if m.group(1).startswith("signal.")})


@register("system_prompt")
class SystemPromptPlugin(Plugin):
    Params = SystemPromptParams

    def referenced_signals(self) -> list[str]:
        return template_signals(self.params.text)

    async def before(self, ctx: RoutingContext) -> None:
        messages = list(ctx.messages)
        text, mode = render(self.params.text, ctx), self.params.mode
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
