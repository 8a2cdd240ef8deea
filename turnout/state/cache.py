"""Stores for the semantic cache: in-process (LRU, bounded) and Redis (shared by every turnout process that
points at it). Both answer the same three questions: the entry under an exact key, the nearest entries of a
bucket to a vector, and many entries by key.

The Redis store keeps entries as keys with a TTL and announces each new one on a stream (`{ns}:log`); every
process mirrors the stream into a local vector index, so a semantic lookup is a local ANN search plus one MGET,
never a scan. Redis failures raise StoreUnavailable; the cache treats them as a miss."""

from __future__ import annotations

import abc
import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from turnout.jsonutil import dumps, loads
from turnout.state.redis import Guarded, StoreUnavailable, close, connect, store_key
from turnout.state.vectors import VectorIndex

__all__ = ["CacheEntry", "CacheStore", "MemoryCacheStore", "RedisCacheStore", "StoreUnavailable", "cache_store"]

SYNC_COUNT, SYNC_BATCHES = 1000, 4
SYNC_INTERVAL_S = 0.05  # another process's new entry is found by semantic lookups here within this delay


@dataclass
class CacheEntry:
    key: str
    bucket: str
    prompt: str  # the last user message the response answered, as written
    response: dict[str, Any]
    created: float
    expires: float


class CacheStore(abc.ABC):
    @abc.abstractmethod
    async def get(self, key: str) -> CacheEntry | None: ...

    @abc.abstractmethod
    async def get_many(self, keys: list[str]) -> list[CacheEntry | None]: ...

    @abc.abstractmethod
    async def nearest(self, bucket: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]: ...

    @abc.abstractmethod
    async def put(self, entry: CacheEntry, vector: np.ndarray | None) -> None: ...

    @abc.abstractmethod
    async def delete(self, keys: list[str]) -> int:
        """Forget these entries; how many there were."""

    @abc.abstractmethod
    async def clear(self) -> int:
        """Forget every entry of this store (its namespace); how many there were."""

    async def aclose(self) -> None:
        return None


class MemoryCacheStore(CacheStore):
    """In this process only: at most `max_entries`, least recently used evicted first, TTL checked on read."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self.index = VectorIndex()

    def _live(self, key: str, now: float) -> CacheEntry | None:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            self._drop(key)
            return None
        self.entries.move_to_end(key)
        return entry

    def _drop(self, key: str) -> None:
        self.entries.pop(key, None)
        self.index.remove(key)

    async def get(self, key: str) -> CacheEntry | None:
        return self._live(key, time.time())

    async def get_many(self, keys: list[str]) -> list[CacheEntry | None]:
        now = time.time()
        return [self._live(k, now) for k in keys]

    async def nearest(self, bucket: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        return self.index.search(bucket, vector, k)

    async def put(self, entry: CacheEntry, vector: np.ndarray | None) -> None:
        self.entries[entry.key] = entry
        self.entries.move_to_end(entry.key)
        if vector is not None:
            self.index.add(entry.bucket, entry.key, vector)
        while len(self.entries) > self.max_entries:
            oldest, _ = self.entries.popitem(last=False)
            self.index.remove(oldest)

    async def delete(self, keys: list[str]) -> int:
        found = [k for k in keys if k in self.entries]
        for key in found:
            self._drop(key)
        return len(found)

    async def clear(self) -> int:
        count = len(self.entries)
        self.entries.clear()
        self.index = VectorIndex()
        return count


class RedisCacheStore(CacheStore):
    def __init__(self, url: str, namespace: str, max_entries: int, timeout_s: float = 1.0) -> None:
        self.client = connect(url, timeout_s)
        self._call = Guarded("redis cache store", "serving misses until it is back")
        self.ns = namespace
        self.log_key = f"{namespace}:log"
        self.max_entries = max_entries
        self.index = VectorIndex()
        self.order: deque[str] = deque()  # arrival order of the local mirror, to bound it
        self.last_id = "0-0"
        self._sync_lock = asyncio.Lock()
        self._synced_at = 0.0

    def _key(self, key: str) -> str:
        return f"{self.ns}:e:{key}"

    @staticmethod
    def _decode(raw: bytes | None) -> CacheEntry | None:
        if raw is None:
            return None
        try:
            return CacheEntry(**loads(raw))
        except (ValueError, TypeError):
            return None

    async def get(self, key: str) -> CacheEntry | None:
        return self._decode(await self._call(self.client.get(self._key(key))))

    async def get_many(self, keys: list[str]) -> list[CacheEntry | None]:
        if not keys:
            return []
        raws = await self._call(self.client.mget([self._key(k) for k in keys]))
        entries = [self._decode(r) for r in raws]
        for key, entry in zip(keys, entries):
            if entry is None:  # expired or evicted in Redis (or Redis restarted): forget it here too
                self.index.remove(key)
        return entries

    async def _sync(self) -> None:
        """Mirror entries other processes added since the last look: everything on the first look, then at most
        SYNC_BATCHES × SYNC_COUNT per lookup, so a lookup never stalls behind a burst of writes."""
        if time.monotonic() - self._synced_at < SYNC_INTERVAL_S or self._sync_lock.locked():
            return  # looked very recently, or another request is looking right now
        async with self._sync_lock:
            self._synced_at = time.monotonic()
            for _ in range(10**9 if self.last_id == "0-0" else SYNC_BATCHES):
                reply = await self._call(self.client.xread({self.log_key: self.last_id}, count=SYNC_COUNT))
                if not reply:
                    return
                records = reply[0][1]
                now = time.time()
                for record_id, fields in records:
                    self.last_id = record_id.decode() if isinstance(record_id, bytes) else record_id
                    key = fields[b"k"].decode()
                    if float(fields[b"x"]) > now and key not in self.index:
                        self._mirror(fields[b"b"].decode(), key, np.frombuffer(fields[b"v"], dtype=np.float16))
                if len(records) < SYNC_COUNT:
                    return

    def _mirror(self, bucket: str, key: str, vector: np.ndarray) -> None:
        self.index.add(bucket, key, vector.astype(np.float32))
        self.order.append(key)
        while len(self.order) > self.max_entries:
            self.index.remove(self.order.popleft())

    async def nearest(self, bucket: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        await self._sync()
        return self.index.search(bucket, vector, k)

    async def put(self, entry: CacheEntry, vector: np.ndarray | None) -> None:
        ttl_ms = max(int((entry.expires - time.time()) * 1000), 1)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self._key(entry.key), dumps(asdict(entry)), px=ttl_ms)
        if vector is not None:
            pipe.xadd(self.log_key, {"k": entry.key, "b": entry.bucket, "x": str(entry.expires),
                                     "v": np.asarray(vector, dtype=np.float16).tobytes()},
                      maxlen=self.max_entries, approximate=True)
        await self._call(pipe.execute())
        if vector is not None:  # this process sees its own entry at once
            self._mirror(entry.bucket, entry.key, np.asarray(vector, dtype=np.float16))

    async def delete(self, keys: list[str]) -> int:
        for key in keys:  # other processes drop their mirror of it at their next lookup that finds it gone
            self.index.remove(key)
        return await self._call(self.client.delete(*[self._key(k) for k in keys])) if keys else 0

    async def clear(self) -> int:
        count = await self._call(self._unlink_all())
        self.index, self.order = VectorIndex(), deque()
        return count

    async def _unlink_all(self) -> int:
        count = 0
        async for batch in _batched(self.client.scan_iter(match=f"{self.ns}:e:*", count=1000), 1000):
            count += await self.client.unlink(*batch)
        await self.client.delete(self.log_key)
        return count

    async def aclose(self) -> None:
        await close(self.client)


async def _batched(keys: AsyncIterator[bytes], size: int) -> AsyncIterator[list[bytes]]:
    batch: list[bytes] = []
    async for key in keys:
        batch.append(key)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


_stores: dict[tuple[Any, ...], CacheStore] = {}


def cache_store(kind: str, *, url: str = "", namespace: str = "turnout:cache", max_entries: int = 10_000) -> CacheStore:
    """One store per (kind, url, namespace) and event loop, shared by every decision's cache and kept across
    config reloads, so a reload does not empty the cache."""
    key = store_key(kind, url, namespace)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = (MemoryCacheStore(max_entries) if kind == "memory"
                                else RedisCacheStore(url, namespace, max_entries))
    return store
