"""Fast JSON for the request path (orjson), with the standard library as the fallback for what orjson
refuses (e.g. integers beyond 64 bits when encoding)."""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def dumps_str(value: Any) -> str:
    return dumps(value).decode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (orjson.JSONDecodeError is one) on bad input, including bad UTF-8."""
    return orjson.loads(data)
