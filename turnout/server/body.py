"""Reading a request body as an untrusted stream: its size is counted while it arrives (a chunked upload is
refused at the limit, not after it was held whole), it must arrive within a deadline (a trickle holds nothing
for long), a client that leaves mid-upload is a 499, and JSON nested beyond a depth is a 400 before any code
walks it recursively."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import ClientDisconnect, Request

from turnout.errors import InvalidRequestError, TurnoutError
from turnout.jsonutil import loads

CLIENT_DISCONNECTED = 499


def too_large(limit: int) -> TurnoutError:
    return TurnoutError(f"request body exceeds {limit} bytes", status=413, type="invalid_request_error",
                        code="request_too_large")


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise TurnoutError(f"the request body did not arrive within {timeout_s:g} s", status=408,
                           type="invalid_request_error", code="request_timeout") from None
    except ClientDisconnect:
        raise TurnoutError("the client closed the connection before its request body had arrived",
                           status=CLIENT_DISCONNECTED, type="invalid_request_error",
                           code="client_disconnected") from None
    return b"".join(chunks)


def parse_json(raw: bytes, max_depth: int) -> Any:
    try:
        value = loads(raw)
    except ValueError as exc:
        message = str(exc)
        if "depth limit" in message or "recursion" in message.lower():
            raise _too_deep(max_depth) from None
        reason = "not valid UTF-8" if "utf-8" in message.lower() else "not valid JSON"
        where = f" at line {exc.lineno}, column {exc.colno}" if getattr(exc, "lineno", None) else ""
        raise InvalidRequestError(f"the request body is {reason}{where}", code="invalid_json") from None
    # Counting brackets runs in C; only a body with many of them is walked to measure its depth.
    if raw.count(b"[") + raw.count(b"{") > max_depth and depth_exceeds(value, max_depth):
        raise _too_deep(max_depth)
    return value


def _too_deep(max_depth: int) -> InvalidRequestError:
    return InvalidRequestError(f"the request body nests arrays and objects more than {max_depth} levels deep",
                               code="json_too_deep")


def depth_exceeds(value: Any, max_depth: int) -> bool:
    """True when arrays/objects nest deeper than max_depth; iterative, so any depth is safe to measure."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


async def read_json(request: Request, limit: int, timeout_s: float, max_depth: int) -> Any:
    return parse_json(await read_body(request, limit, timeout_s), max_depth)
