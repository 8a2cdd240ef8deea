"""Fast JSON for the request path (orjson), with the standard library as the fallback for what orjson
refuses (e.g. integers beyond 64 bits when encoding)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # big integers, or lone surrogates (kept as \u escapes, as the client sent them)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def dumps_str(value: Any) -> str:
    return dumps(value).decode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError on bad input. A lone UTF-16 surrogate escape (invalid UTF-8 once decoded),
    which orjson refuses, is accepted as the standard library does, so such a request is served, not refused."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):  # orjson's verdict stands: the fallback would only be slower (or recurse)
            raise
        try:
            return json.loads(data)
        except RecursionError:
            raise ValueError("depth limit exceeded") from None
