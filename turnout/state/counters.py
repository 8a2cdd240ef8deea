"""Windowed counters for rate limits and budgets: in-process, or in Redis so that every turnout process
pointing at it counts together. A counter lives in one fixed window (a minute, a UTC day, a UTC month) and
expires after it; `add` returns the window's new total."""

from __future__ import annotations

import abc
import time
from typing import Any

from turnout.state.redis import Guarded, close, connect, store_key


class Counters(abc.ABC):
    @abc.abstractmethod
    async def add(self, name: str, amount: float, ttl_s: float) -> float: ...

    @abc.abstractmethod
    async def get(self, name: str) -> float: ...

    async def aclose(self) -> None:
        return None


class MemoryCounters(Counters):
    def __init__(self) -> None:
        self.values: dict[str, tuple[float, float]] = {}  # name → (value, expires at)

    def _prune(self, now: float) -> None:
        if len(self.values) > 10_000:
            self.values = {k: v for k, v in self.values.items() if v[1] > now}

    async def add(self, name: str, amount: float, ttl_s: float) -> float:
        now = time.time()
        value, expires = self.values.get(name, (0.0, now + ttl_s))
        if expires <= now:
            value, expires = 0.0, now + ttl_s
        self.values[name] = (value + amount, expires)
        self._prune(now)
        return value + amount

    async def get(self, name: str) -> float:
        value, expires = self.values.get(name, (0.0, 0.0))
        return value if expires > time.time() else 0.0


class RedisCounters(Counters):
    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self._call = Guarded("limit counters", "requests are let through until they are back")
        self.ns = namespace

    async def add(self, name: str, amount: float, ttl_s: float) -> float:
        key = f"{self.ns}:n:{name}"
        pipe = self.client.pipeline(transaction=True)
        pipe.incrbyfloat(key, amount)
        pipe.expire(key, max(int(ttl_s) + 1, 1), nx=True)
        value, _ = await self._call(pipe.execute())
        return float(value)

    async def get(self, name: str) -> float:
        raw = await self._call(self.client.get(f"{self.ns}:n:{name}"))
        return float(raw) if raw is not None else 0.0

    async def aclose(self) -> None:
        await close(self.client)


_counters: dict[tuple[Any, ...], Counters] = {}


def counters(store: str, url: str, namespace: str) -> Counters:
    """One counter store per (kind, url, namespace) and event loop; kept across reloads."""
    key = store_key(store, url, namespace)
    found = _counters.get(key)
    if found is None:
        found = _counters[key] = MemoryCounters() if store == "memory" else RedisCounters(url, namespace)
    return found
