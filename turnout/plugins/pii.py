"""PII guard, with the detectors of the `pii` signal (emails, phones, Luhn-checked cards, IBANs, SSNs, NINOs, IP
addresses, API keys and secrets):
- `redact`: each item becomes a typed placeholder (`[EMAIL_1]`) before the request leaves turnout; with
  `restore: true` the placeholders in the answer are put back, in streams too;
- `block`: refuse with a 400 (`pii_detected`) that names the kinds found, never the values;
- `route`: send the request, unchanged, to `model` (a local one) instead of the routed model."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import Field, model_validator

from turnout.context import RoutingContext
from turnout.errors import InvalidRequestError
from turnout.jsonutil import dumps_str, loads
from turnout.params import Params
from turnout.plugins.base import Plugin, register
from turnout.signals.pii import ALL_TYPES, PiiType, find_pii

_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
_OPEN_TAIL = re.compile(r"\[[A-Z_\d]*$")  # a placeholder that may be cut by a chunk boundary


class PiiPluginParams(Params):
    action: Literal["redact", "block", "route"] = "redact"
    types: list[PiiType] = Field(default_factory=lambda: list(ALL_TYPES), min_length=1)
    restore: bool = Field(False, description="redact: put the original values back into the answer")
    model: str | None = Field(None, description="route: the model that may see personal data")
    roles: list[str] = Field(default_factory=lambda: ["system", "developer", "user", "tool", "assistant"],
                             description="the messages scanned")

    @model_validator(mode="after")
    def _model_for_route(self):
        if self.action == "route" and not self.model:
            raise ValueError("action 'route' needs `model`: the model that may receive personal data")
        return self


class Redactor:
    """Replaces PII spans with placeholders; the same value always gets the same placeholder."""

    def __init__(self, types: tuple[str, ...]) -> None:
        self.types = types
        self.by_value: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    @property
    def originals(self) -> dict[str, str]:
        return {placeholder: value for value, placeholder in self.by_value.items()}

    def redact(self, text: str) -> str:
        spans = find_pii(text, self.types)
        for span in reversed(spans):
            value = text[span.start:span.end]
            placeholder = self.by_value.get(value)
            if placeholder is None:
                self.counts[span.type] = self.counts.get(span.type, 0) + 1
                placeholder = self.by_value[value] = f"[{span.type.upper()}_{self.counts[span.type]}]"
            text = text[:span.start] + placeholder + text[span.end:]
        return text


def restore(text: str, originals: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


def _map_text(content: Any, fn) -> Any:
    if isinstance(content, str):
        return fn(content)
    if isinstance(content, list):
        return [{**part, "text": fn(part["text"])} if isinstance(part, dict) and isinstance(part.get("text"), str)
                else part for part in content]
    return content


@register("pii")
class PiiPlugin(Plugin):
    Params = PiiPluginParams
    fail_closed = True

    def referenced_models(self) -> list[str]:
        return [self.params.model] if self.params.model else []

    def _scanned(self, ctx: RoutingContext) -> list[tuple[int, dict[str, Any]]]:
        return [(i, m) for i, m in enumerate(ctx.messages) if isinstance(m, dict) and m.get("role") in self.params.roles]

    async def before(self, ctx: RoutingContext) -> None:
        types = tuple(self.params.types)
        if self.params.action == "redact":
            redactor = Redactor(types)
            messages = list(ctx.messages)
            for i, message in self._scanned(ctx):
                messages[i] = {**message, "content": _map_text(message.get("content"), redactor.redact)}
            if redactor.by_value:
                ctx.set_body({**ctx.body, "messages": messages})
                ctx.cache["plugin:pii:originals"] = redactor.originals
                ctx.response_headers["x-turnout-pii"] = "redacted"
            return None
        found: dict[str, int] = {}
        for _, message in self._scanned(ctx):
            texts: list[str] = []
            _map_text(message.get("content"), lambda t: texts.append(t) or t)
            for span in (s for t in texts for s in find_pii(t, types)):
                found[span.type] = found.get(span.type, 0) + 1
        if not found:
            return None
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(found.items()))
        if self.params.action == "block":
            raise InvalidRequestError(f"the request contains personal data ({kinds}) and was blocked by policy",
                                      code="pii_detected")
        ctx.model = self.params.model or ctx.model
        ctx.response_headers["x-turnout-pii"] = f"routed to {ctx.model}"
        return None

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        originals = ctx.cache.get("plugin:pii:originals")
        if not (self.params.restore and originals):
            return response
        choices = []
        for choice in response.get("choices") or []:
            message = choice.get("message") or {}
            choices.append({**choice, "message": {**message, "content": _map_text(message.get("content"),
                                                                                   lambda t: restore(t, originals))}})
        return {**response, "choices": choices}

    def wrap_stream(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        originals = ctx.cache.get("plugin:pii:originals")
        if not (self.params.restore and originals):
            return batches
        return _restoring(batches, originals)


async def _restoring(batches: AsyncIterator[list[str]], originals: dict[str, str]) -> AsyncIterator[list[str]]:
    """Restore placeholders in streamed content; a placeholder cut by a chunk boundary is held back until the
    next chunk of the same choice completes it."""
    held: dict[int, str] = {}
    async for batch in batches:
        out = []
        for chunk in batch:
            try:
                data = loads(chunk)
            except ValueError:
                out.append(chunk)
                continue
            changed = False
            for choice in data.get("choices") or ():
                delta = choice.get("delta") or {}
                index = int(choice.get("index") or 0)
                text = delta.get("content")
                if isinstance(text, str) or (choice.get("finish_reason") and held.get(index)):
                    text = held.pop(index, "") + (text or "")
                    tail = _OPEN_TAIL.search(text) if not choice.get("finish_reason") else None
                    if tail:
                        held[index], text = text[tail.start():], text[:tail.start()]
                    delta["content"] = restore(text, originals)
                    choice["delta"] = delta
                    changed = True
            out.append(dumps_str(data) if changed else chunk)
        yield out
