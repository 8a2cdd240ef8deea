"""PII guard, with the detectors of the `pii` signal (emails, phones, Luhn-checked cards, IBANs, SSNs, NINOs, IP
addresses, API keys and secrets):
- `redact`: each item becomes a typed placeholder (`[EMAIL_1]`) before the request leaves turnout; with
  `restore: true` the placeholders in the answer are put back, in streams too;
- `block`: refuse with a 400 (`pii_detected`) that names the kinds found, never the values;
- `route`: send the request, unchanged, to `model` (a local one) instead of the routed model.

What is scanned: in the messages of `roles`, the content (text and refusal parts, and the URL of an image that
is not inline `data:`), the author `name`, and the arguments of the assistant's tool and function calls; and,
whatever the roles, the request's `user`, `safety_identifier`, `metadata` values and `prediction` content."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from turnout.context import RoutingContext
from turnout.cpu import off_gil
from turnout.errors import InvalidRequestError
from turnout.jsonutil import dumps_str, loads
from turnout.params import Params
from turnout.plugins.base import Plugin, register
from turnout.signals.pii import ALL_TYPES, OFF_LOOP_CHARS, PiiType, find_pii

# linear: the character classes cannot match "[" or "]", so no start can reach past the next bracket
_PLACEHOLDER = re.compile(r"\[[A-Z_]+_\d+\]")
_OPEN_TAIL = re.compile(r"\[[A-Z_\d]*$")  # a placeholder that may be cut by a chunk boundary
# longer than any placeholder ("[CREDIT_CARD_123456]"): such a tail is text, sent on (holding an ever-growing
# tail back and searching it again at every chunk would make a stream quadratic)
_MAX_TAIL = 32
ORIGINALS = "plugin:pii:originals"  # placeholder → original value, kept when `restore` is on
_TOP_LEVEL = ("user", "safety_identifier")


class PiiPluginParams(Params):
    action: Literal["redact", "block", "route"] = "redact"
    types: list[PiiType] = Field(default_factory=lambda: list(ALL_TYPES), min_length=1)
    restore: bool = Field(False, description="redact: put the original values back into the answer")
    model: str | None = Field(None, description="route: the model that may see personal data")
    roles: list[str] = Field(default_factory=lambda: ["system", "developer", "user", "tool", "function",
                                                      "assistant"], description="the messages scanned")

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
        if not spans:
            return text
        pieces, last = [], 0
        for span in spans:  # in order and disjoint: one pass (slicing the text once per span would be quadratic)
            value = text[span.start:span.end]
            placeholder = self.by_value.get(value)
            if placeholder is None:
                self.counts[span.type] = self.counts.get(span.type, 0) + 1
                placeholder = self.by_value[value] = f"[{span.type.upper()}_{self.counts[span.type]}]"
            pieces += [text[last:span.start], placeholder]
            last = span.end
        pieces.append(text[last:])
        return "".join(pieces)


def restore(text: str, originals: dict[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: originals.get(m.group(), m.group()), text)


# ----- the fields that can carry personal data -------------------------------------------------------------

def _map_part(part: Any, fn: Callable[[str], str]) -> Any:
    if not isinstance(part, dict):
        return part
    for key in ("text", "refusal"):
        if isinstance(part.get(key), str):
            return {**part, key: fn(part[key])}
    image = part.get("image_url")
    if part.get("type") == "image_url" and isinstance(image, dict) and isinstance(image.get("url"), str) \
            and not image["url"].startswith("data:"):  # inline image bytes are not text: left whole
        return {**part, "image_url": {**image, "url": fn(image["url"])}}
    return part


def _map_content(content: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(content, str):
        return fn(content)
    if isinstance(content, list):
        return [_map_part(part, fn) for part in content]
    return content


def _map_call(call: Any, fn: Callable[[str], str]) -> Any:
    """A tool call ({function: {arguments}}) or a legacy function call ({arguments})."""
    if not isinstance(call, dict):
        return call
    function = call.get("function")
    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
        return {**call, "function": {**function, "arguments": fn(function["arguments"])}}
    if isinstance(call.get("arguments"), str):
        return {**call, "arguments": fn(call["arguments"])}
    return call


def map_message(message: dict[str, Any], fn: Callable[[str], str]) -> dict[str, Any]:
    """The message with `fn` applied to every text in it that may hold personal data."""
    out = dict(message)
    if "content" in out:
        out["content"] = _map_content(out["content"], fn)
    if isinstance(out.get("name"), str):
        out["name"] = fn(out["name"])
    if isinstance(out.get("tool_calls"), list):
        out["tool_calls"] = [_map_call(call, fn) for call in out["tool_calls"]]
    if isinstance(out.get("function_call"), dict):
        out["function_call"] = _map_call(out["function_call"], fn)
    return out


def map_body(body: dict[str, Any], roles: list[str], fn: Callable[[str], str]) -> dict[str, Any]:
    """The request body with `fn` applied to every text that may hold personal data (see the module doc)."""
    out = dict(body)
    if isinstance(body.get("messages"), list):
        out["messages"] = [map_message(m, fn) if isinstance(m, dict) and m.get("role") in roles else m
                           for m in body["messages"]]
    for key in _TOP_LEVEL:
        if isinstance(body.get(key), str):
            out[key] = fn(body[key])
    if isinstance(body.get("metadata"), dict):
        out["metadata"] = {k: fn(v) if isinstance(v, str) else v for k, v in body["metadata"].items()}
    if isinstance(body.get("prediction"), dict) and "content" in body["prediction"]:  # predicted output: text
        out["prediction"] = {**body["prediction"], "content": _map_content(body["prediction"]["content"], fn)}
    return out


def _texts(body: dict[str, Any], roles: list[str]) -> list[str]:
    texts: list[str] = []
    map_body(body, roles, lambda t: texts.append(t) or t)
    return texts


# ----- the plugin --------------------------------------------------------------------------------------------

@register("pii")
class PiiPlugin(Plugin):
    Params = PiiPluginParams
    fail_closed = True

    def referenced_models(self) -> list[str]:
        return [self.params.model] if self.params.model else []

    async def before(self, ctx: RoutingContext) -> None:
        types, roles = tuple(self.params.types), self.params.roles
        texts = _texts(ctx.body, roles)
        # a long body is scanned in a worker process (turnout.cpu): the loop serves other requests meanwhile
        long = sum(map(len, texts)) > OFF_LOOP_CHARS
        if self.params.action == "redact":
            body, originals = await off_gil(_redacted, ctx.body, roles, types) if long else \
                _redacted(ctx.body, roles, types)
            if originals:
                ctx.set_body(body)
                if self.params.restore:
                    ctx.cache[ORIGINALS] = originals
                ctx.response_headers["x-turnout-pii"] = "redacted"
            return
        spans = await off_gil(_find_all, texts, types) if long else _find_all(texts, types)
        if not spans:
            return
        found: dict[str, int] = {}
        for kind in spans:
            found[kind] = found.get(kind, 0) + 1
        kinds = ", ".join(f"{k} ({n})" for k, n in sorted(found.items()))
        if self.params.action == "block":
            raise InvalidRequestError(f"the request contains personal data ({kinds}) and was blocked by policy",
                                      code="pii_detected")
        ctx.model = self.params.model or ctx.model
        ctx.response_headers["x-turnout-pii"] = f"routed to {ctx.model}"
        ctx.cache["plugin:pinned_model"] = ctx.model  # no plan may send it to its other models (pipeline)

    async def after(self, ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
        return restore_response(ctx, response)

    def wrap_stream(self, ctx: RoutingContext, batches: AsyncIterator[list[str]]) -> AsyncIterator[list[str]]:
        originals = ctx.cache.get(ORIGINALS)
        return _restoring(batches, originals) if originals else batches


def _redacted(body: dict[str, Any], roles: list[str], types: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, str]]:
    """The body with its PII replaced, and {placeholder: original value} (empty: nothing was found)."""
    redactor = Redactor(types)
    return map_body(body, roles, redactor.redact), redactor.originals


def _find_all(texts: list[str], types: tuple[str, ...]) -> list[str]:
    return [span.type for text in texts for span in find_pii(text, types)]


def restore_response(ctx: RoutingContext, response: dict[str, Any]) -> dict[str, Any]:
    """A complete answer with the placeholders of this request's redaction put back (when `restore` is on):
    content, refusals and tool-call arguments."""
    originals = ctx.cache.get(ORIGINALS)
    if not originals or not isinstance(response.get("choices"), list):
        return response
    fn = lambda text: restore(text, originals)
    choices = [{**c, "message": map_message(c["message"], fn)} if isinstance(c, dict) and isinstance(
        c.get("message"), dict) else c for c in response["choices"]]
    return {**response, "choices": choices}


async def _restoring(batches: AsyncIterator[list[str]], originals: dict[str, str]) -> AsyncIterator[list[str]]:
    """Restore placeholders in streamed content and tool-call arguments; a placeholder cut by a chunk boundary
    is held back until the next chunk of the same choice (and tool call) completes it."""
    held: dict[tuple[int, int], str] = {}  # (choice, tool call or -1 for the content) → the open tail
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
                if not isinstance(choice, dict):
                    continue
                index, finished = int(choice.get("index") or 0), bool(choice.get("finish_reason"))
                delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
                text = delta.get("content")
                if isinstance(text, str) or (finished and (index, -1) in held):
                    delta["content"] = _restore_piece(held, (index, -1), text or "", finished, originals)
                    changed = True
                for call in delta.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                        key = (index, int(call.get("index") or 0))
                        function["arguments"] = _restore_piece(held, key, function["arguments"], finished, originals)
                        changed = True
                if finished and (tails := [key for key in held if key[0] == index]):
                    # tool-call arguments still held back when the choice ends: sent with its last chunk
                    calls = delta.setdefault("tool_calls", [])
                    calls += [{"index": key[1], "function": {"arguments": restore(held.pop(key), originals)}}
                              for key in tails]
                    changed = True
                choice["delta"] = delta
            out.append(dumps_str(data) if changed else chunk)
        yield out


def _restore_piece(held: dict[tuple[int, int], str], key: tuple[int, int], text: str, finished: bool,
                   originals: dict[str, str]) -> str:
    text = held.pop(key, "") + text
    tail = None if finished else _OPEN_TAIL.search(text, max(0, len(text) - _MAX_TAIL))
    if tail:
        held[key], text = text[tail.start():], text[:tail.start()]
    return restore(text, originals)
