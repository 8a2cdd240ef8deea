"""Breaker state shared by every replica through Redis (`state.store: redis`): a replica whose breaker opens
publishes it as a key that expires with the cooldown, one that sees its probe answer publishes the close, and
every replica refreshes a local view of those keys in the background (one MGET every REFRESH_S). A request
only reads the local view — never a Redis round trip on the request path. Redis down: each replica's breakers
go on alone (the Guarded warning says so, once per 10 s)."""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from turnout.state.redis import Guarded, StoreUnavailable, connect, store_key

log = logging.getLogger("turnout.breaker")

REFRESH_S = 0.2  # a breaker opened on one replica pauses the backend on the others within about this
CLOSED_KEEP_S = 5.0  # a close stays readable this long, so every replica's refresh sees it


@dataclass(frozen=True)
class BreakerEvent:
    """The last change one replica made to a model's breaker: `open` until `until`, or `closed`; both on the
    wall clock (`at`, `until`), the one clock replicas share."""

    state: str
    at: float
    until: float = 0.0


class SharedBreaker(Protocol):
    model: str

    def apply(self, event: BreakerEvent) -> None: ...


class BreakerBoard:
    """One per Redis URL, namespace and event loop: publishes this process's breaker changes and hands the
    others' to the breakers registered here."""

    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self.prefix = f"{namespace}:breaker:"
        self.view: dict[str, BreakerEvent] = {}
        self._breakers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._guard = Guarded("shared breaker state (Redis)", "each replica's breakers act alone meanwhile")
        self._tasks: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None

    def register(self, breaker: SharedBreaker) -> None:
        self._breakers.add(breaker)
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(self._refresh_forever())
        if (event := self.view.get(breaker.model)) is not None:
            breaker.apply(event)

    def publish(self, model: str, event: BreakerEvent) -> None:
        """Fire and forget: the breaker's own state has already changed; the others learn it at their refresh."""
        self.view[model] = event
        ttl_s = max(event.until - event.at, CLOSED_KEEP_S) if event.state == "open" else CLOSED_KEEP_S
        body = orjson.dumps({"state": event.state, "at": event.at, "until": event.until})
        task = asyncio.get_running_loop().create_task(self._set(self.prefix + model, body, ttl_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set(self, key: str, body: bytes, ttl_s: float) -> None:
        try:
            await self._guard(self.client.set(key, body, px=max(1, int(ttl_s * 1000))))
        except StoreUnavailable:
            pass

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await self.refresh()
            except StoreUnavailable:
                pass
            except Exception as exc:  # noqa: BLE001 - a bad key must never stop the refresher
                log.warning("shared breaker refresh failed: %s", type(exc).__name__)

    async def refresh(self) -> None:
        models = sorted({b.model for b in list(self._breakers)})
        if not models:
            return
        values = await self._guard(self.client.mget([self.prefix + m for m in models]))
        for model, raw in zip(models, values):
            if raw is None:
                continue
            data = orjson.loads(raw)
            event = BreakerEvent(str(data["state"]), float(data["at"]), float(data.get("until", 0.0)))
            if self.view.get(model) != event:
                self.view[model] = event
        for breaker in list(self._breakers):
            if (event := self.view.get(breaker.model)) is not None:
                breaker.apply(event)


_boards: dict[tuple[Any, ...], BreakerBoard] = {}


def breaker_board(url: str, namespace: str) -> BreakerBoard | None:
    """The board of this event loop (None outside one: a Router built for `turnout route` shares nothing)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return None
    key = store_key("redis", url, namespace)
    board = _boards.get(key)
    if board is None:
        board = _boards[key] = BreakerBoard(url, namespace)
    return board


def wall() -> float:
    return time.time()
