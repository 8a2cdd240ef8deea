"""Outcome records, where `state.store` says: this process's memory (a ring of `max_records`, the oldest out
first) or Redis (one key per record expiring after `ttl_s`, shared by every process; indexed by request id, by
response id, and newest first overall and per tenant).

Recording never waits and never fails a request: `record()` is synchronous. The memory store inserts at once (a
dict insert); the Redis store queues the record (at most `backlog`; beyond it records are dropped and counted)
and one task per event loop writes the queue in pipelined batches. A record still in the queue is found by
`get()` all the same, so feedback sent the moment an answer arrives finds its record."""

from __future__ import annotations

import abc
import asyncio
import hashlib
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from turnout.jsonutil import dumps, loads
from turnout.outcomes import Outcome
from turnout.state.redis import Guarded, StoreUnavailable, close, connect, store_key

if TYPE_CHECKING:
    from turnout.config import Config

__all__ = ["MemoryOutcomeStore", "OutcomeQuery", "OutcomeStore", "RedisOutcomeStore", "StoreUnavailable",
           "UnknownCursor", "outcome_store", "redact_pii"]

PROMPT_CHARS = 8000  # a stored prompt is cut here: a record is a summary, not an archive
BATCH = 200  # records per Redis pipeline
LINGER_S = 0.02  # the writer waits this long for more records: one pipeline for many requests costs far less CPU
TRIM_EVERY_S = 10.0  # how often an index is trimmed of expired entries (each trim is a command)
SCAN_LIMIT = 20_000  # index entries one filtered listing may look at (a filter matching little stays bounded)


# One call writes a whole batch: a command per record and index from Python cost ~70 µs a record in the client.
# ARGV: ttl_ms, then per record: request id, response id ('' for none), time, tenant hash, the record's JSON.
_WRITE = """
local ns, ttl = KEYS[1], ARGV[1]
for i = 2, #ARGV, 5 do
  local rid, resp, t, tenant = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  redis.call('SET', ns .. ':rec:' .. rid, ARGV[i + 4], 'PX', ttl)
  if resp ~= '' then redis.call('SET', ns .. ':rid:' .. resp, rid, 'PX', ttl) end
  redis.call('ZADD', ns .. ':idx', t, rid)
  redis.call('ZADD', ns .. ':idx:' .. tenant, t, rid)
end
return 1
"""


class UnknownCursor(LookupError):
    """`after` names no listed record (expired, evicted or never made)."""


@dataclass(frozen=True)
class OutcomeQuery:
    tenant: str | None = None
    decision: str | None = None
    model: str | None = None
    since: float | None = None
    limit: int = 50
    after: str | None = None  # a request id: list what came before it (the next page, newest first)

    def matches(self, o: Outcome) -> bool:
        return ((self.tenant is None or o.tenant == self.tenant)
                and (self.decision is None or o.decision == self.decision)
                and (self.model is None or o.model == self.model) and (self.since is None or o.time >= self.since))


def redact_pii(text: str) -> str:
    """The text with every PII item the pii signal finds replaced by its type, e.g. `[email]`."""
    # the detector, not the signal: no config needed
    from turnout.signals.pii import find_pii

    out, last = [], 0
    for span in find_pii(text):
        out += [text[last:span.start], f"[{span.type}]"]
        last = span.end
    return "".join(out) + text[last:]


def _tenant(tenant: str) -> str:
    # a key name may hold any character (":" too): hashed, it cannot reach into another tenant's keys
    return hashlib.sha256(tenant.encode()).hexdigest()[:32]


class OutcomeStore(abc.ABC):
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.dropped = 0  # records not kept: backlog full or the store unreachable

    @abc.abstractmethod
    def record(self, outcome: Outcome, prompt: str | None = None) -> None:
        """Keep a new record; `prompt` (raw) is PII-redacted before it is stored. Never blocks, never raises."""

    @abc.abstractmethod
    async def get(self, record_id: str) -> Outcome | None:
        """A record by request id or response id; None when unknown or expired."""

    @abc.abstractmethod
    async def save(self, outcome: Outcome) -> None:
        """Write an updated record (feedback) now; raises StoreUnavailable."""

    @abc.abstractmethod
    def scan(self, query: OutcomeQuery, max_scan: int | None = None) -> AsyncIterator[Outcome]:
        """Every matching record, newest first (`query.limit` aside), looking at `max_scan` records at most."""

    async def list(self, query: OutcomeQuery) -> tuple[list[Outcome], bool]:
        """Newest first, at most `query.limit`, and whether there are more."""
        page: list[Outcome] = []
        async for o in self.scan(query, SCAN_LIMIT):
            page.append(o)
            if len(page) > query.limit:
                break
        return page[:query.limit], len(page) > query.limit

    async def flush(self) -> None:
        """Wait until every queued record is written (tests, export)."""

    async def aclose(self) -> None:
        return None


class MemoryOutcomeStore(OutcomeStore):
    """This process only: the newest `max_records` records; a record older than `ttl_s` is skipped."""

    def __init__(self, max_records: int, ttl_s: float) -> None:
        super().__init__(ttl_s)
        self.max_records = max_records
        self.records: OrderedDict[str, Outcome] = OrderedDict()  # by request id, oldest first
        self.by_response: dict[str, str] = {}

    def record(self, outcome: Outcome, prompt: str | None = None) -> None:
        if prompt:
            outcome.prompt = redact_pii(prompt[:PROMPT_CHARS])
        self.records[outcome.request_id] = outcome
        if outcome.response_id:
            self.by_response[outcome.response_id] = outcome.request_id
        while len(self.records) > self.max_records:
            _, old = self.records.popitem(last=False)
            if old.response_id:
                self.by_response.pop(old.response_id, None)

    def _fresh(self, outcome: Outcome | None) -> Outcome | None:
        return outcome if outcome is not None and outcome.time > time.time() - self.ttl_s else None

    async def get(self, record_id: str) -> Outcome | None:
        found = self.records.get(record_id)
        if found is None and record_id in self.by_response:
            found = self.records.get(self.by_response[record_id])
        return self._fresh(found)

    async def save(self, outcome: Outcome) -> None:
        if outcome.request_id in self.records:
            self.records[outcome.request_id] = outcome

    async def scan(self, query: OutcomeQuery, max_scan: int | None = None) -> AsyncIterator[Outcome]:
        if query.after is not None and query.after not in self.records:
            raise UnknownCursor(query.after)
        newest = reversed(list(self.records.values()))  # a copy: records may arrive while the caller awaits
        if query.after is not None:
            for o in newest:
                if o.request_id == query.after:
                    break
        since = max(query.since or 0.0, time.time() - self.ttl_s)
        for seen, o in enumerate(newest):
            if o.time < since or (max_scan is not None and seen >= max_scan):
                break  # oldest first in the ring: everything further is older still
            if query.matches(o):
                yield o


class RedisOutcomeStore(OutcomeStore):
    """`rec:ID` holds a record (JSON) and `rid:RESPONSE_ID` its request id, both expiring after `ttl_s`;
    `idx` and `idx:TENANT` are sorted sets of request ids by time, trimmed of expired entries as they are written."""

    def __init__(self, url: str, namespace: str, ttl_s: float, backlog: int) -> None:
        super().__init__(ttl_s)
        self.client = connect(url)
        self.ns = f"{namespace}:out"
        self.backlog = backlog
        self._call = Guarded("outcomes store", "requests are served but their records are not kept")
        self._queue: deque[tuple[Outcome, str | None]] = deque()
        self._pending: dict[str, Outcome] = {}  # queued, by request id and by response id
        self._writer: asyncio.Task[None] | None = None
        self._trimmed: dict[str, float] = {}  # index key → when it was last trimmed
        self._script = self.client.register_script(_WRITE)

    def record(self, outcome: Outcome, prompt: str | None = None) -> None:
        if len(self._queue) >= self.backlog:
            self.dropped += 1
            return
        self._queue.append((outcome, prompt))
        self._pending[outcome.request_id] = outcome
        if outcome.response_id:
            self._pending[outcome.response_id] = outcome
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        await asyncio.sleep(LINGER_S)
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            for outcome, prompt in batch:
                if prompt:
                    outcome.prompt = await _redact_off_loop(prompt[:PROMPT_CHARS])
            try:
                await self._write([o for o, _ in batch])
            except StoreUnavailable:
                self.dropped += len(batch)
            except Exception:  # noqa: BLE001 - whatever it was, the writer goes on with the next batch
                self.dropped += len(batch)
            finally:
                for outcome, _ in batch:
                    self._pending.pop(outcome.request_id, None)
                    if outcome.response_id:
                        self._pending.pop(outcome.response_id, None)

    async def _write(self, batch: list[Outcome]) -> None:
        ttl_ms = max(int(self.ttl_s * 1000), 1)
        args: list[Any] = [ttl_ms]
        indexes = {f"{self.ns}:idx"}
        for o in batch:
            try:
                record = dumps(o.to_dict())
            except TypeError:  # a value that is not JSON: this record is lost, not the batch
                self.dropped += 1
                continue
            tenant = _tenant(o.tenant)
            args += [o.request_id, o.response_id or "", repr(o.time), tenant, record]
            indexes.add(f"{self.ns}:idx:{tenant}")
        if len(args) == 1:
            return
        await self._call(self._script(keys=[self.ns], args=args))
        now = time.time()
        stale = [key for key in indexes if now - self._trimmed.get(key, 0.0) > TRIM_EVERY_S]
        if stale:  # a listing skips expired entries meanwhile
            pipe = self.client.pipeline(transaction=False)
            for key in stale:
                self._trimmed[key] = now
                pipe.zremrangebyscore(key, "-inf", now - self.ttl_s)
                pipe.pexpire(key, ttl_ms)
            await self._call(pipe.execute())
        if len(self._trimmed) > 10_000:
            self._trimmed.clear()

    async def _load(self, keys: list[str]) -> list[Outcome | None]:
        raws = await self._call(self.client.mget(keys)) if keys else []
        out: list[Outcome | None] = []
        for raw in raws:
            try:
                out.append(Outcome.from_dict(loads(raw)) if raw is not None else None)
            except (ValueError, TypeError):
                out.append(None)  # a record written by something else: as good as none
        return out

    async def get(self, record_id: str) -> Outcome | None:
        if record_id in self._pending:
            return self._pending[record_id]
        raw, request_id = await self._call(self.client.mget([f"{self.ns}:rec:{record_id}",
                                                             f"{self.ns}:rid:{record_id}"]))
        if raw is None and request_id is not None:
            return (await self._load([f"{self.ns}:rec:{request_id.decode()}"]))[0]
        return (await self._load([f"{self.ns}:rec:{record_id}"]))[0] if raw is not None else None

    async def save(self, outcome: Outcome) -> None:
        if outcome.request_id in self._pending:
            return  # the queued object is this one: the writer stores it with the change
        await self._call(self.client.set(f"{self.ns}:rec:{outcome.request_id}", dumps(outcome.to_dict()),
                                         keepttl=True, xx=True))

    async def scan(self, query: OutcomeQuery, max_scan: int | None = None) -> AsyncIterator[Outcome]:
        await self.flush()  # a listing shows what was answered before it
        index = f"{self.ns}:idx" if query.tenant is None else f"{self.ns}:idx:{_tenant(query.tenant)}"
        start = 0
        if query.after is not None:
            rank = await self._call(self.client.zrevrank(index, query.after))
            if rank is None:
                raise UnknownCursor(query.after)
            start = rank + 1
        since = max(query.since or 0.0, time.time() - self.ttl_s)
        step, seen = min(max(query.limit + 1, 100), 1000), 0
        while max_scan is None or seen < max_scan:
            entries = await self._call(self.client.zrevrange(index, start, start + step - 1, withscores=True))
            if not entries:
                return
            start += len(entries)
            seen += len(entries)
            fresh = [m.decode() for m, score in entries if score >= since]
            for o in await self._load([f"{self.ns}:rec:{m}" for m in fresh]):
                if o is not None and query.matches(o):
                    yield o
            if len(fresh) < len(entries):
                return  # reached records older than `since`

    async def flush(self) -> None:
        if self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)

    async def aclose(self) -> None:
        await self.flush()
        await close(self.client)


async def _redact_off_loop(text: str) -> str:
    if len(text) <= 2000:
        return redact_pii(text)
    from turnout.signals.base import off_loop

    return await off_loop(redact_pii, text)


_stores: dict[tuple[Any, ...], OutcomeStore] = {}


def outcome_store(config: Config) -> OutcomeStore:
    """One store per (kind, url, namespace) and event loop, kept across config reloads (a reload loses no
    record); a reload's new bounds apply to the store it finds."""
    state, outcomes = config.state, config.outcomes
    key = store_key(state.store, state.redis_url, state.namespace)
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = MemoryOutcomeStore(outcomes.max_records, outcomes.ttl_s) if state.store == "memory" \
            else RedisOutcomeStore(state.redis_url, state.namespace, outcomes.ttl_s, outcomes.backlog)
    else:
        store.ttl_s = outcomes.ttl_s
        if isinstance(store, MemoryOutcomeStore):
            store.max_records = outcomes.max_records
        elif isinstance(store, RedisOutcomeStore):
            store.backlog = outcomes.backlog
    return store
