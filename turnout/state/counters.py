"""Windowed counters for rate limits and budgets: in-process, or in Redis so that every turnout process
pointing at it counts together. A counter lives in one fixed window (a minute, a UTC day, a UTC month) and
expires after it.

Limits are enforced by `reserve`: every limit of a request is checked and, only if none refuses, added to, in
one atomic step (one Lua script in Redis; no await in between in memory). Checking first and adding later lets
every request that arrives before the first one finishes through, which is how parallel requests overspent."""

from __future__ import annotations

import abc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from turnout.state.redis import Guarded, close, connect, store_key


@dataclass(frozen=True)
class Limit:
    """One counter of a request's admission. Refused when its window's total has reached `cap`, or would pass
    it by adding `need`; else `add` is added (what the request reserves, which may be more than `need`)."""

    name: str
    cap: float
    need: float
    add: float
    ttl_s: float

    def refuses(self, total: float) -> bool:
        return total >= self.cap or total + self.need > self.cap


class Counters(abc.ABC):
    @abc.abstractmethod
    async def reserve(self, limits: Sequence[Limit]) -> int | None:
        """All or nothing: the index of the first limit that refuses (nothing is added), or None once every
        limit's `add` is added."""

    @abc.abstractmethod
    async def adjust(self, changes: Sequence[tuple[str, float]]) -> None:
        """Add (or, negative, take back) amounts to counters whose window is still open; a closed window is
        left closed (a settled request does not reopen the minute it was admitted in)."""

    @abc.abstractmethod
    async def totals(self, names: Sequence[str]) -> list[float]:
        """The current totals of counters (0 for one whose window closed): read by the dashboard, not by limits."""

    async def aclose(self) -> None:
        return None


class MemoryCounters(Counters):
    def __init__(self) -> None:
        self.values: dict[str, tuple[float, float]] = {}  # name → (value, expires at)

    def _prune(self, now: float) -> None:
        if len(self.values) > 10_000:
            self.values = {k: v for k, v in self.values.items() if v[1] > now}

    def _total(self, name: str, now: float) -> float:
        value, expires = self.values.get(name, (0.0, 0.0))
        return value if expires > now else 0.0

    async def reserve(self, limits: Sequence[Limit]) -> int | None:
        # No await from the first check to the last add: no other request of this process runs in between.
        now = time.time()
        for i, limit in enumerate(limits):
            if limit.refuses(self._total(limit.name, now)):
                return i
        for limit in limits:
            if limit.add:
                value, expires = self.values.get(limit.name, (0.0, 0.0))
                if expires <= now:
                    value, expires = 0.0, now + limit.ttl_s
                self.values[limit.name] = (value + limit.add, expires)
        self._prune(now)
        return None

    async def adjust(self, changes: Sequence[tuple[str, float]]) -> None:
        now = time.time()
        for name, amount in changes:
            value, expires = self.values.get(name, (0.0, 0.0))
            if expires > now:
                self.values[name] = (value + amount, expires)

    async def totals(self, names: Sequence[str]) -> list[float]:
        now = time.time()
        return [self._total(name, now) for name in names]


# KEYS: the counters; ARGV: cap, need, add, ttl of each in turn. Returns 0 when admitted, else the 1-based
# index of the refusing limit. TTL is set only on a counter that has none, so a window never moves.
_RESERVE = """
for i = 1, #KEYS do
  local total = tonumber(redis.call('GET', KEYS[i]) or '0')
  local cap, need = tonumber(ARGV[4 * i - 3]), tonumber(ARGV[4 * i - 2])
  if total >= cap or total + need > cap then return i end
end
for i = 1, #KEYS do
  if tonumber(ARGV[4 * i - 1]) ~= 0 then
    redis.call('INCRBYFLOAT', KEYS[i], ARGV[4 * i - 1])
    if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[4 * i]) end
  end
end
return 0
"""

# KEYS: the counters; ARGV: the amount for each. A counter that has expired stays gone.
_ADJUST = """
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBYFLOAT', KEYS[i], ARGV[i]) end
end
return 0
"""


class RedisCounters(Counters):
    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self._call = Guarded("limit counters", "requests are let through until they are back")
        self.ns = namespace
        # EVALSHA, loading the script again after a Redis restart forgot it (NOSCRIPT)
        self._reserve = self.client.register_script(_RESERVE)
        self._adjust = self.client.register_script(_ADJUST)

    def _key(self, name: str) -> str:
        return f"{self.ns}:n:{name}"

    async def reserve(self, limits: Sequence[Limit]) -> int | None:
        if not limits:
            return None
        args: list[str] = []
        for limit in limits:
            args += [repr(float(limit.cap)), repr(float(limit.need)), repr(float(limit.add)),
                     str(max(int(limit.ttl_s) + 1, 1))]
        refused = int(await self._call(self._reserve(keys=[self._key(x.name) for x in limits], args=args)))
        return refused - 1 if refused else None

    async def adjust(self, changes: Sequence[tuple[str, float]]) -> None:
        changes = [(name, amount) for name, amount in changes if amount]
        if changes:
            await self._call(self._adjust(keys=[self._key(n) for n, _ in changes],
                                          args=[repr(float(a)) for _, a in changes]))

    async def totals(self, names: Sequence[str]) -> list[float]:
        # one MGET: callers pass one key's counters, which share a hash tag (one Cluster slot)
        raw = await self._call(self.client.mget([self._key(n) for n in names])) if names else []
        return [float(v) if v is not None else 0.0 for v in raw]

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
