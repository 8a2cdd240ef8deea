"""What every provider's translation of the internal (chat) form needs alike: a tool call's arguments as a JSON
value, a data: URL split into its media type and payload, the text of a message's content, and the instruction that
stands in for `response_format` where a provider has no JSON mode."""

from __future__ import annotations

import json
from typing import Any

from turnout.errors import InvalidRequestError
from turnout.jsonutil import loads


def call_arguments(call: dict[str, Any], param: str) -> tuple[str, str, Any]:
    """A chat tool call's id, function name and parsed arguments (a 400 naming `param`'s arguments when they are
    not JSON)."""
    fn = call.get("function") or {}
    raw = fn.get("arguments") or "{}"
    try:
        arguments = loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise InvalidRequestError("tool call arguments are not valid JSON", param=f"{param}.function.arguments") from None
    return call.get("id", ""), fn.get("name", ""), arguments


def data_url(url: str, param: str, default_type: str = "application/octet-stream") -> tuple[str, str]:
    """The media type and base64 payload of a `data:` URL; a 400 naming `param` unless it is base64."""
    header, _, data = url.partition(",")
    if not url.startswith("data:") or ";base64" not in header:
        raise InvalidRequestError("data: URLs must be base64-encoded", param=param)
    return header[5:].split(";")[0] or default_type, data


def content_text(content: Any) -> str:
    """The text parts of a message's content, joined by newlines (a string content as it is)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def json_instruction(body: dict[str, Any]) -> str | None:
    """For a provider with no JSON mode: the system instruction that asks for the `response_format` the request
    names (None when it names none)."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") not in ("json_object", "json_schema"):
        return None
    schema = (fmt.get("json_schema") or {}).get("schema")
    return "Answer with a single JSON value and nothing else." + (
        f" It must match this JSON schema: {json.dumps(schema)}" if schema else "")
