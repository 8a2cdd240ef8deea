"""Session pins of session-aware routing (turnout/sessions.py): which model a conversation is on. In this
process's memory (bounded, the least recently used session out first) or in Redis (shared by every process
pointing at it), each with a TTL renewed on every request of the session. A session belongs to one caller (the
API key's name), which is part of the key, so two tenants sending the same session id never share a pin.
Redis failures raise StoreUnavailable; the router then routes that request without stickiness."""

from __future__ import annotations

import abc
import hashlib
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from turnout.jsonutil import dumps, loads
from turnout.state.redis import Guarded, StoreUnavailable, close, connect, store_key

__all__ = ["MemorySessionStore", "Pin", "RedisSessionStore", "SessionStore", "StoreUnavailable", "session_store"]

MAX_SESSIONS = 100_000  # memory store: about 200 bytes each


@dataclass(frozen=True)
class Pin:
    """Where a session is: its model, the decision (and that decision's priority) that put it there, how many
    requests it has served and how many times it moved."""

    model: str
    decision: str
    priority: float
    turns: int = 1
    switches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Pin | None:
        try:
            return cls(str(data["model"]), str(data["decision"]), float(data["priority"]), int(data.get("turns", 1)),
                       int(data.get("switches", 0)))
        except (TypeError, KeyError, ValueError):
            return None  # a record from another version, or garbage: as if there were none


def _owner(owner: str) -> str:
    # a key name may hold any character (":" too): hashed, it cannot reach into another owner's sessions
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


class SessionStore(abc.ABC):
    @abc.abstractmethod
    async def get(self, owner: str, session: str) -> Pin | None:
        """The session's pin, or None when it is unknown, expired or another owner's."""

    @abc.abstractmethod
    async def put(self, owner: str, session: str, pin: Pin, ttl_s: float) -> None: ...

    async def aclose(self) -> None:
        return None


class MemorySessionStore(SessionStore):
    """This process only: at most `max_sessions`, the least recently used evicted first, TTL checked on read."""

    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self.pins: OrderedDict[tuple[str, str], tuple[float, Pin]] = OrderedDict()

    async def get(self, owner: str, session: str) -> Pin | None:
        key = (_owner(owner), session)
        found = self.pins.get(key)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            del self.pins[key]
            return None
        return found[1]

    async def put(self, owner: str, session: str, pin: Pin, ttl_s: float) -> None:
        key = (_owner(owner), session)
        self.pins[key] = (time.monotonic() + ttl_s, pin)
        self.pins.move_to_end(key)
        while len(self.pins) > self.max_sessions:
            self.pins.popitem(last=False)


class RedisSessionStore(SessionStore):
    """One Redis key per session, expiring with it: no sweeping, no size bound. A write is last-writer-wins:
    two replicas answering the same session at once both pin, and the later pin stands — the same outcome a
    single process gives two concurrent requests."""

    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self._call = Guarded("session store", "requests are routed without stickiness until it is back")
        self.ns = namespace

    def _key(self, owner: str, session: str) -> str:
        return f"{self.ns}:sess:{_owner(owner)}:{session}"

    async def get(self, owner: str, session: str) -> Pin | None:
        raw = await self._call(self.client.get(self._key(owner, session)))
        if raw is None:
            return None
        try:
            return Pin.from_dict(loads(raw))
        except ValueError:
            return None

    async def put(self, owner: str, session: str, pin: Pin, ttl_s: float) -> None:
        await self._call(self.client.set(self._key(owner, session), dumps(pin.to_dict()),
                                         px=max(int(ttl_s * 1000), 1)))

    async def aclose(self) -> None:
        await close(self.client)


_stores: dict[tuple[Any, ...], SessionStore] = {}


def session_store(kind: str, *, url: str = "", namespace: str = "turnout") -> SessionStore:
    """One store per (kind, url, namespace) and event loop, kept across config reloads (a reload moves no
    conversation off its model)."""
    key = store_key(kind, url, namespace)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = MemorySessionStore() if kind == "memory" else RedisSessionStore(url, namespace)
    return store
