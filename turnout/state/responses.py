"""Stored responses of the Responses API (`previous_response_id`, GET/DELETE /v1/responses/{id}): in this
process's memory (bounded, oldest first out) or in Redis (shared by every process pointing at it), each with a
TTL. Every record belongs to one caller (the API key's name): the owner is part of the key, so another key's
response id is exactly as unknown as one never made. Redis failures raise StoreUnavailable; the door decides
what that means (a lost write leaves the answer unstored; a failed read cannot continue a conversation)."""

from __future__ import annotations

import abc
import hashlib
import time
from collections import OrderedDict
from typing import Any

from turnout.jsonutil import dumps, loads
from turnout.state.redis import Guarded, StoreUnavailable, close, connect, store_key

__all__ = ["MemoryResponseStore", "RedisResponseStore", "ResponseStore", "StoreUnavailable", "response_store"]


def _owner(owner: str) -> str:
    # a key name may hold any character (":" too): hashed, it cannot reach into another owner's keys
    return hashlib.sha256(owner.encode()).hexdigest()[:32]


class ResponseStore(abc.ABC):
    @abc.abstractmethod
    async def get(self, owner: str, response_id: str) -> dict[str, Any] | None:
        """The record, or None when it is unknown, expired, deleted or another owner's."""

    @abc.abstractmethod
    async def put(self, owner: str, response_id: str, record: dict[str, Any], ttl_s: float) -> None: ...

    @abc.abstractmethod
    async def delete(self, owner: str, response_id: str) -> bool:
        """Forget a record; whether there was one."""

    async def aclose(self) -> None:
        return None


#: the memory store's bound in bytes, whatever `max_stored` says: a record holds a whole conversation, so a count
#: alone would let a few clients with long prompts fill the process
MAX_BYTES = 256 * 1024 * 1024


class MemoryResponseStore(ResponseStore):
    """This process only: at most `max_stored` records and MAX_BYTES of them, the oldest evicted first, TTL
    checked on read. Records are kept as their JSON: bytes are what the bound counts, a reader gets its own copy,
    and the garbage collector has no nested objects of thousands of conversations to walk."""

    def __init__(self, max_stored: int, max_bytes: int = MAX_BYTES) -> None:
        self.max_stored, self.max_bytes = max_stored, max_bytes
        self.records: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self.bytes = 0

    async def get(self, owner: str, response_id: str) -> dict[str, Any] | None:
        key = (_owner(owner), response_id)
        found = self.records.get(key)
        if found is None:
            return None
        if found[0] <= time.time():
            self._forget(key)
            return None
        return loads(found[1])

    async def put(self, owner: str, response_id: str, record: dict[str, Any], ttl_s: float) -> None:
        key = (_owner(owner), response_id)
        self._forget(key)
        data = dumps(record)
        self.records[key] = (time.time() + ttl_s, data)
        self.bytes += len(data)
        while self.records and (len(self.records) > self.max_stored or self.bytes > self.max_bytes):
            self._forget(next(iter(self.records)))

    async def delete(self, owner: str, response_id: str) -> bool:
        return self._forget((_owner(owner), response_id))

    def _forget(self, key: tuple[str, str]) -> bool:
        found = self.records.pop(key, None)
        if found is None:
            return False
        self.bytes -= len(found[1])
        return True


class RedisResponseStore(ResponseStore):
    """One Redis key per record, expiring with it (so the store needs no sweeping and no size bound)."""

    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self._call = Guarded("responses store", "responses are answered but not stored until it is back")
        self.ns = namespace

    def _key(self, owner: str, response_id: str) -> str:
        return f"{self.ns}:resp:{_owner(owner)}:{response_id}"

    async def get(self, owner: str, response_id: str) -> dict[str, Any] | None:
        raw = await self._call(self.client.get(self._key(owner, response_id)))
        if raw is None:
            return None
        try:
            record = loads(raw)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    async def put(self, owner: str, response_id: str, record: dict[str, Any], ttl_s: float) -> None:
        await self._call(self.client.set(self._key(owner, response_id), dumps(record), px=max(int(ttl_s * 1000), 1)))

    async def delete(self, owner: str, response_id: str) -> bool:
        return bool(await self._call(self.client.delete(self._key(owner, response_id))))

    async def aclose(self) -> None:
        await close(self.client)


_stores: dict[tuple[Any, ...], ResponseStore] = {}


def response_store(kind: str, *, url: str = "", namespace: str = "turnout", max_stored: int = 10_000) -> ResponseStore:
    """One store per (kind, url, namespace) and event loop, kept across config reloads (a reload forgets no
    conversation); a reload's new `max_stored` applies to the store it finds."""
    key = store_key(kind, url, namespace)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = MemoryResponseStore(max_stored) if kind == "memory" else RedisResponseStore(url, namespace)
    elif isinstance(store, MemoryResponseStore):
        store.max_stored = max_stored
    return store
