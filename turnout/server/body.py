"""Reading a request body as an untrusted stream: its size is counted while it arrives (a chunked upload is
refused at the limit, not after it was held whole), it must arrive within a deadline (a trickle holds nothing
for long), a client that leaves mid-upload is a 499, and JSON nested beyond a depth, or holding more arrays and
objects than a request needs, is a 400 before any code walks it recursively. What that check costs is bounded by
the body's size: a body with few brackets is parsed and walked; one with many is measured on its bytes first (in C
and numpy, about 20 ns a byte), so 8 MiB of `[],` is refused in a fifth of a second instead of being parsed
(0.6 s) and walked (2.5 s) with the event loop held."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import numpy as np
from starlette.requests import Request

from turnout.config.models import ServerConfig
from turnout.errors import InvalidRequestError, TurnoutError
from turnout.jsonutil import loads

CLIENT_DISCONNECTED = 499


def too_large(limit: int) -> TurnoutError:
    return TurnoutError(f"request body exceeds {limit} bytes", status=413, type="invalid_request_error",
                        code="request_too_large")


async def read_body(request: Request, limit: int, timeout_s: float, declared: str | None = None) -> bytes:
    """The body, read from the ASGI receive channel (`declared`: its content-length header, when the caller has the
    headers already). When the server says the whole body is in hand (HeadWithBodyCycle.body_in_hand: a request
    that came in one read, which is nearly every one), it is taken without arming the deadline, which nothing
    could reach then; otherwise every wait for more counts against `timeout_s`."""
    if declared is None:
        declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    receive = request.receive
    in_hand = getattr(getattr(receive, "__self__", None), "body_in_hand", None)
    if in_hand is not None and in_hand():
        body, more = _body_of(await receive())
        if len(body) > limit:
            raise too_large(limit)
        if not more:
            return body
        chunks, size = [body], len(body)
    else:
        chunks, size, more = [], 0, True
    try:
        async with asyncio.timeout(timeout_s):
            while more:
                chunk, more = _body_of(await receive())
                size += len(chunk)
                if size > limit:
                    raise too_large(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise TurnoutError(f"the request body did not arrive within {timeout_s:g} s", status=408,
                           type="invalid_request_error", code="request_timeout") from None
    return b"".join(chunks)


def _body_of(message: Any) -> tuple[bytes, bool]:
    """One ASGI receive message: its bytes and whether more follow; a 499 when the client has gone."""
    if message["type"] != "http.request":  # http.disconnect
        raise TurnoutError("the client closed the connection before its request body had arrived",
                           status=CLIENT_DISCONNECTED, type="invalid_request_error",
                           code="client_disconnected")
    return message.get("body", b""), message.get("more_body", False)


WALK_BRACKETS = 20_000  # up to this many brackets a body is parsed, then walked; more: measured on its bytes first
MAX_CONTAINERS: int = ServerConfig.model_fields["max_json_containers"].default

_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included: brackets in it do not count
_STEP = np.zeros(256, np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


def structure(raw: bytes) -> tuple[int, int]:
    """(deepest nesting, arrays and objects) of a JSON text, read from its bytes without parsing it."""
    bare = _STRINGS.sub(b"", raw)
    steps = _STEP[np.frombuffer(bare, np.uint8)]
    depth = int(np.cumsum(steps, dtype=np.int32).max()) if steps.size else 0
    return depth, bare.count(b"[") + bare.count(b"{")


def parse_json(raw: bytes, max_depth: int, max_containers: int = MAX_CONTAINERS) -> Any:
    brackets = raw.count(b"[") + raw.count(b"{")  # in C; strings' brackets too, so an upper bound
    measure = min(WALK_BRACKETS, max_containers)  # above this, the bytes are measured before anything is parsed
    if brackets > measure:
        depth, containers = structure(raw)
        if depth > max_depth:
            raise _too_deep(max_depth)
        if containers > max_containers:
            raise InvalidRequestError(f"the request body holds {containers} arrays and objects, more than this "
                                      f"server takes ({max_containers})", code="json_too_large")
    try:
        value = loads(raw)
    except ValueError as exc:
        message = str(exc)
        if "depth limit" in message or "recursion" in message.lower():
            raise _too_deep(max_depth) from None
        reason = "not valid UTF-8" if "utf-8" in message.lower() else "not valid JSON"
        where = f" at line {exc.lineno}, column {exc.colno}" if getattr(exc, "lineno", None) else ""
        raise InvalidRequestError(f"the request body is {reason}{where}", code="invalid_json") from None
    # only a body with more brackets than levels allowed can be too deep; a few thousand are walked in microseconds
    if max_depth < brackets <= measure and depth_exceeds(value, max_depth):
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


async def read_json(request: Request, limit: int, timeout_s: float, max_depth: int,
                    max_containers: int = MAX_CONTAINERS, declared: str | None = None) -> Any:
    return parse_json(await read_body(request, limit, timeout_s, declared), max_depth, max_containers)
