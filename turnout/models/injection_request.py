"""The injection score of a request: computed once per request, artifact and scope, shared by the `jailbreak`
signal and the `jailbreak` guard plugin (both may run on one request)."""

from __future__ import annotations

import asyncio
from typing import Any

from turnout.context import RoutingContext
from turnout.cpu import off_gil
from turnout.models.injection import Detector, Item, load_detector
from turnout.models.injection_text import request_texts

# a prompt this short is scored inline (about a millisecond); a longer one in a worker process (a thread when the
# server runs none), so the event loop keeps serving other requests meanwhile, at full speed (turnout.cpu)
INLINE_CHARS = 4000


def _inline(items: list[Item]) -> bool:
    return sum(len(text) for _, text in items) <= INLINE_CHARS


def _score_with(artifact: str, items: list[Item]) -> tuple[float, dict[str, Any]]:
    """The score by the detector `artifact` names, loaded (once per process) in whichever process runs this."""
    return load_detector(artifact).score(items)


async def _score_off_loop(detector: Detector, artifact: str | None, items: list[Item]) -> tuple[float, dict[str, Any]]:
    # a worker process loads the detector by its artifact's name: only when that name loads this very detector
    # here (a detector built in memory, or under another name, is scored in a thread)
    if artifact is not None and _loads(artifact, detector):
        return await off_gil(_score_with, artifact, items)
    return await asyncio.to_thread(detector.score, items)


def _loads(artifact: str, detector: Detector) -> bool:
    try:
        return load_detector(artifact) is detector
    except (OSError, ValueError):
        return False


async def score_items(detector: Detector, items: list[Item], artifact: str | None = None) -> tuple[float, dict[str, Any]]:
    if _inline(items):
        return detector.score(items)
    return await _score_off_loop(detector, artifact, items)


def _texts_key(scope: str) -> str:
    return f"injection-texts:{scope}"


def _items(ctx: RoutingContext, scope: str) -> list[Item]:
    """The texts `scope` covers, read once for injection_inline and the score right after it (taken back by that
    score: a plugin that runs later may have changed the body)."""
    key = _texts_key(scope)
    items = ctx.cache.get(key)
    if items is None:
        items = ctx.cache[key] = request_texts(ctx.body, scope)
    return items


def injection_inline(ctx: RoutingContext, artifact: str, scope: str = "all") -> bool:
    """True when request_injection(ctx, _, artifact, scope) will return without suspending."""
    found = ctx.cache.get(f"injection:{artifact}:{scope}")
    if found is not None:
        return not isinstance(found, asyncio.Future) or found.done()
    return _inline(_items(ctx, scope))


async def request_injection(ctx: RoutingContext, detector: Detector, artifact: str,
                            scope: str = "all") -> tuple[float, dict[str, Any]]:
    """(probability, where it was found) for the messages `scope` covers (see injection_text.request_texts)."""
    key = f"injection:{artifact}:{scope}"
    found = ctx.cache.get(key)
    if found is None:
        items = ctx.cache.pop(_texts_key(scope), None) or request_texts(ctx.body, scope)
        if _inline(items):  # scored right here, with no await in between: no task, no turn of the event loop
            found = ctx.cache[key] = detector.score(items)
            return found
        # a long one off the loop; a second reader of the same score (the guard, another signal) awaits this one
        found = ctx.cache[key] = asyncio.ensure_future(_score_off_loop(detector, artifact, items))
    if isinstance(found, asyncio.Future):
        result = await found
        ctx.cache[key] = result
        return result
    return found
