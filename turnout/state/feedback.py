"""Per-tenant state of the implicit and explicit feedback signals: each tenant's recent questions (for `reask`:
a normalised-text hash, the packaged static encoder's vector as float16, the request id) and its last explicit
rating (for `feedback`). In this process's memory (bounded: the most recently active tenants) or in Redis (one
list and one key per tenant, expiring with their window), like every other shared store."""

from __future__ import annotations

import abc
import hashlib
import struct
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from turnout.state.redis import Guarded, StoreUnavailable, close, connect, store_key

__all__ = ["Ask", "FeedbackState", "StoreUnavailable", "feedback_state", "text_hash"]

MAX_TENANTS = 100_000  # memory store: tenants kept (least recently active out first)
_HEAD = struct.Struct("<d16s32s")  # time, text hash, request id (uuid hex)


def text_hash(text: str) -> bytes:
    """Case, punctuation and spacing do not make a question new."""
    folded = " ".join("".join(c if c.isalnum() else " " for c in text.casefold()).split())
    return hashlib.blake2b(folded.encode("utf-8", "replace"), digest_size=16).digest()


@dataclass(frozen=True)
class Ask:
    time: float
    digest: bytes
    request_id: str
    vector: np.ndarray  # float16, unit length (as the encoder gives it)

    def pack(self) -> bytes:
        return _HEAD.pack(self.time, self.digest, self.request_id.encode()[:32]) + self.vector.astype("<f2").tobytes()

    @classmethod
    def unpack(cls, raw: bytes) -> Ask:
        t, digest, rid = _HEAD.unpack_from(raw)
        return cls(t, digest, rid.rstrip(b"\0").decode(), np.frombuffer(raw[_HEAD.size:], dtype="<f2"))


class FeedbackState(abc.ABC):
    @abc.abstractmethod
    async def recent(self, tenant: str, window_s: float) -> list[Ask]:
        """The tenant's asks of the last `window_s`, newest first."""

    @abc.abstractmethod
    async def remember(self, tenant: str, ask: Ask, keep: int, window_s: float) -> None: ...

    @abc.abstractmethod
    async def set_rating(self, tenant: str, quality: float, window_s: float = 86400) -> None: ...

    @abc.abstractmethod
    async def rating(self, tenant: str) -> tuple[float, float] | None:
        """The tenant's last explicit rating and its time, if any was kept."""

    async def aclose(self) -> None:
        return None


class MemoryFeedbackState(FeedbackState):
    def __init__(self) -> None:
        self.asks: OrderedDict[str, deque[Ask]] = OrderedDict()
        self.ratings: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def recent(self, tenant: str, window_s: float) -> list[Ask]:
        horizon = time.time() - window_s
        return [a for a in reversed(self.asks.get(tenant, ())) if a.time >= horizon]

    async def remember(self, tenant: str, ask: Ask, keep: int, window_s: float) -> None:
        found = self.asks.get(tenant)
        if found is None or found.maxlen != keep:
            found = self.asks[tenant] = deque(found or (), maxlen=keep)
        found.append(ask)
        self.asks.move_to_end(tenant)
        while len(self.asks) > MAX_TENANTS:
            self.asks.popitem(last=False)

    async def set_rating(self, tenant: str, quality: float, window_s: float = 86400) -> None:
        self.ratings[tenant] = (quality, time.time())
        self.ratings.move_to_end(tenant)
        while len(self.ratings) > MAX_TENANTS:
            self.ratings.popitem(last=False)

    async def rating(self, tenant: str) -> tuple[float, float] | None:
        return self.ratings.get(tenant)


class RedisFeedbackState(FeedbackState):
    def __init__(self, url: str, namespace: str) -> None:
        self.client = connect(url)
        self.ns = f"{namespace}:fb"
        self._call = Guarded("feedback state", "the reask and feedback signals do not match until it is back")

    def _key(self, what: str, tenant: str) -> str:
        return f"{self.ns}:{what}:{hashlib.sha256(tenant.encode()).hexdigest()[:32]}"

    async def recent(self, tenant: str, window_s: float) -> list[Ask]:
        raws = await self._call(self.client.lrange(self._key("asks", tenant), 0, -1))
        horizon = time.time() - window_s
        asks = [Ask.unpack(raw) for raw in raws if len(raw) > _HEAD.size]
        return [a for a in asks if a.time >= horizon]

    async def remember(self, tenant: str, ask: Ask, keep: int, window_s: float) -> None:
        key = self._key("asks", tenant)
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(key, ask.pack())
        pipe.ltrim(key, 0, keep - 1)
        pipe.pexpire(key, max(int(window_s * 1000), 1))
        await self._call(pipe.execute())

    async def set_rating(self, tenant: str, quality: float, window_s: float = 86400) -> None:
        await self._call(self.client.set(self._key("rating", tenant), f"{quality!r} {time.time()!r}",
                                         px=max(int(window_s * 1000), 1)))

    async def rating(self, tenant: str) -> tuple[float, float] | None:
        raw = await self._call(self.client.get(self._key("rating", tenant)))
        try:
            quality, at = raw.decode().split()
            return float(quality), float(at)
        except (AttributeError, ValueError):
            return None

    async def aclose(self) -> None:
        await close(self.client)


_states: dict[tuple[Any, ...], FeedbackState] = {}


def feedback_state(kind: str, url: str, namespace: str) -> FeedbackState:
    """One per (kind, url, namespace) and event loop, kept across reloads."""
    key = store_key(kind, url, namespace)
    found = _states.get(key)
    if found is None:
        found = _states[key] = MemoryFeedbackState() if kind == "memory" else RedisFeedbackState(url, namespace)
    return found
