"""What online selectors learn, kept per decision and arm (candidate model) as a vector of additive sufficient
statistics (counts, sums, XᵀX): in this process's memory, or in Redis shared by every replica.

Every update is an increment, so replicas never overwrite each other: in Redis one Lua script adds a delta to the
statistics of one decision and arm (one key, read, added to and written back atomically) and returns them as they
now stand. `select`
never waits on Redis: it reads a local view, refreshed in the background every `refresh_s` and after each own
update. While Redis is unreachable the view keeps serving, own updates are kept as pending deltas and sent once
it is back, and `unavailable` says so (the selector puts it in its reason)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
import weakref
from typing import Any

import numpy as np

from turnout.state.redis import Guarded, StoreUnavailable, close, connect, log

REFRESH_S = 0.5
CLOSE_S = 2.0  # the most each step of closing the Redis state may take

# KEYS[1]: the arm's statistics; ARGV[1]: the delta. Both packed: "b:" then little-endian float64s (struct in Redis's
# Lua; numpy's frombuffer here), which neither side has to format or parse as text. A value written by an earlier
# version as comma-separated text is read as such and rewritten packed. Atomic (Redis runs a script alone) and one
# round trip (EVALSHA); a hash with HINCRBYFLOAT per field costs ~10x more for linucb's ~170 numbers.
PACKED = b"b:"
ADD_SCRIPT = """
local values = {}
local current = redis.call('GET', KEYS[1])
if current and string.sub(current, 1, 2) == 'b:' then
  local pos, n = 3, (#current - 2) / 8
  for k = 1, n do values[k], pos = struct.unpack('<d', current, pos) end
elseif current then
  for v in string.gmatch(current, '[^,]+') do values[#values + 1] = tonumber(v) end
end
local delta, pos = ARGV[1], 3
for k = 1, (#delta - 2) / 8 do
  local v
  v, pos = struct.unpack('<d', delta, pos)
  values[k] = (values[k] or 0) + v
end
local parts = {}
for k = 1, #values do parts[k] = struct.pack('<d', values[k]) end
local joined = 'b:' .. table.concat(parts)
redis.call('SET', KEYS[1], joined)
return joined
"""


def pack(values: np.ndarray) -> bytes:
    return PACKED + np.asarray(values, dtype="<f8").tobytes()


def unpack(reply: Any) -> np.ndarray:
    """A stored value: packed, or the comma-separated text an earlier version wrote."""
    raw = reply if isinstance(reply, bytes) else str(reply).encode()
    if raw.startswith(PACKED):
        return np.frombuffer(raw, dtype="<f8", offset=len(PACKED)).astype(np.float64)
    return np.array(raw.decode().split(","), dtype=np.float64)


class BanditState(abc.ABC):
    """Per arm, a float vector of `size` additive statistics (zeros until something is learned)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._versions: dict[str, int] = {}
        self._claimed: dict[str, np.ndarray] = {}

    @abc.abstractmethod
    def view(self, arm: str) -> np.ndarray:
        """The arm's statistics as this process sees them now (do not modify)."""

    @abc.abstractmethod
    async def add(self, arm: str, delta: np.ndarray) -> None:
        """Add `delta` to the arm's statistics (atomically, for every replica sharing them)."""

    async def claim(self, name: str, value: np.ndarray | None) -> np.ndarray | None:
        """A set-once vector shared by every replica (the learners' context centroids): the first value claimed
        under `name` wins and is returned to every later claimer; `value` None only reads it."""
        found = self._claimed.get(name)
        if found is None and value is not None:
            found = self._claimed[name] = np.asarray(value, dtype=np.float64)
        return found

    def track(self, arms: list[str]) -> None:
        """The arms to keep a view of from the start (a shared store reads them at once, before the first pick)."""
        return

    def version(self, arm: str) -> int:
        """Changes whenever the arm's view changes: a selector caching something derived (an inverse) keys on it."""
        return self._versions.get(arm, 0)

    def _bump(self, arm: str) -> None:
        self._versions[arm] = self._versions.get(arm, 0) + 1

    @property
    def unavailable(self) -> str | None:
        """Why the shared statistics cannot be reached now (None: they can, or there is nothing shared)."""
        return None

    async def aclose(self) -> None:
        return None


class MemoryBanditState(BanditState):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.values: dict[str, np.ndarray] = {}

    def view(self, arm: str) -> np.ndarray:
        found = self.values.get(arm)
        if found is None:
            found = self.values[arm] = np.zeros(self.size)
        return found

    async def add(self, arm: str, delta: np.ndarray) -> None:
        self.view(arm)
        self.values[arm] = self.values[arm] + delta
        self._bump(arm)


class RedisBanditState(BanditState):
    """One key per arm, `{namespace}:{arm}`: its statistics as comma-separated numbers (exact: %.17g)."""

    def __init__(self, url: str, namespace: str, size: int, refresh_s: float = REFRESH_S) -> None:
        super().__init__(size)
        self.url, self.namespace, self.refresh_s = url, namespace, refresh_s
        self.snapshot: dict[str, np.ndarray] = {}  # as Redis last said
        self.pending: dict[str, np.ndarray] = {}  # own deltas Redis has not taken yet
        self.sending: dict[str, np.ndarray] = {}  # own deltas on their way (still in the view until Redis answers)
        self._script: Any = None
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._down_since: float | None = None
        self._guard = Guarded("the shared bandit state (Redis)", "routing on this process's local view; "
                                                                 "updates are kept and sent when it is back")

    def key(self, arm: str) -> str:
        return f"{self.namespace}:{arm}"

    def track(self, arms: list[str]) -> None:
        """Read the arms' statistics now, so a restarted server serves what was learned from its first request:
        with a blocking client when no event loop runs here (a router is built before the server's loop starts,
        and reloaded in a worker thread), else in the background."""
        for arm in arms:
            self.snapshot.setdefault(arm, np.zeros(self.size))
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self._read_blocking(arms)
            return
        self._start()

    def _read_blocking(self, arms: list[str]) -> None:
        import redis
        from redis.exceptions import RedisError

        try:
            client = redis.Redis.from_url(self.url, socket_timeout=1.0, socket_connect_timeout=1.0)
            try:
                replies = client.mget([self.key(a) for a in arms])
            finally:
                client.close()
        except (RedisError, OSError) as exc:
            self._down_since = self._down_since or time.monotonic()
            log.warning("the shared bandit state (Redis) unavailable (%s); starting from the prior",
                        type(exc).__name__)
            return
        for arm, reply in zip(arms, replies):
            self._store(arm, reply)

    async def claim(self, name: str, value: np.ndarray | None) -> np.ndarray | None:
        """SET NX, then GET (one round trip each, once per process): unreachable, this process's own value
        serves (unshared until a later claim)."""
        if name in self._claimed:
            return self._claimed[name]
        try:
            client = self._connection()
            if value is not None:
                await self._guard(client.set(self.key(name), ",".join(map(repr, np.asarray(value).tolist())), nx=True))
            reply = await self._guard(client.get(self.key(name)))
        except StoreUnavailable:
            self._down_since = self._down_since or time.monotonic()
            return value
        if not reply:
            return None
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
        found = self._claimed[name] = np.array(text.split(","), dtype=np.float64)
        return found

    def view(self, arm: str) -> np.ndarray:
        self._start()
        base = self.snapshot.get(arm)
        if base is None:
            base = self.snapshot[arm] = np.zeros(self.size)
        extra, sent = self.pending.get(arm), self.sending.get(arm)
        if extra is None and sent is None:
            return base
        return base + (0.0 if extra is None else extra) + (0.0 if sent is None else sent)

    @property
    def unavailable(self) -> str | None:
        if self._down_since is None:
            return None
        return f"shared bandit state unreachable for {time.monotonic() - self._down_since:.0f}s: routing on the local view"

    async def add(self, arm: str, delta: np.ndarray) -> None:
        self.pending[arm] = self.pending.get(arm, 0.0) + delta
        self._bump(arm)
        await self._flush(arm)

    async def refresh(self) -> None:
        """Send pending deltas, then read every known arm's hash (one round trip)."""
        for arm in list(self.pending):
            await self._flush(arm)
        arms = list(self.snapshot)
        if not arms:
            return
        try:
            client = self._connection()
            async with client.pipeline(transaction=False) as pipe:
                for arm in arms:
                    pipe.get(self.key(arm))
                replies = await self._guard(pipe.execute())
        except StoreUnavailable:
            self._down_since = self._down_since or time.monotonic()
            return
        self._down_since = None
        for arm, reply in zip(arms, replies):
            self._store(arm, reply)

    async def _flush(self, arm: str) -> None:
        delta = self.pending.pop(arm, None)
        if delta is None or arm in self.sending:  # one delta in flight per arm: the next goes after it
            if delta is not None:
                self.pending[arm] = delta
            return
        self.sending[arm] = delta
        base = self.snapshot.get(arm)
        try:
            reply = await self._guard(self._add(arm, pack(delta)))
        except StoreUnavailable:
            self.pending[arm] = self.pending.get(arm, 0.0) + delta  # kept (with any added meanwhile) for later
            self._down_since = self._down_since or time.monotonic()
            return
        finally:
            self.sending.pop(arm, None)
        self._down_since = None
        if reply is not None:
            # nobody else's update in between: the view is what it was (base + delta), so no version bump and an
            # inverse cached on it stays valid
            self._store(arm, reply, None if base is None else base + delta)
        if arm in self.pending:  # added while this one was on its way
            await self._flush(arm)

    def _add(self, arm: str, packed: bytes) -> Any:
        client = self._connection()
        if self._script is None or self._script.registered_client is not client:
            self._script = client.register_script(ADD_SCRIPT)  # EVALSHA, loading the script when Redis lacks it
        return self._script(keys=[self.key(arm)], args=[packed])

    def _store(self, arm: str, reply: Any, expected: np.ndarray | None = None) -> None:
        values = np.zeros(self.size)
        if reply:
            found = unpack(reply)[:self.size]
            values[:len(found)] = found
        old = self.snapshot.get(arm) if expected is None else expected
        self.snapshot[arm] = values
        if old is None or not np.array_equal(old, values):
            self._bump(arm)

    def _connection(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:  # a client belongs to the loop that opened it
            self._client, self._loop = connect(self.url), loop
        return self._client

    def _start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # read outside a loop (a benchmark's sync loop): refreshed on the next update
        self._task = loop.create_task(_refresh_loop(weakref.ref(self), self.refresh_s))

    async def aclose(self) -> None:
        """Stop the refresher, send what is pending, close the client: each step bounded (CLOSE_S), so a Redis
        call that never returns (seen with redis-py when the refresher is cancelled inside a pipeline) cannot keep
        a reload or a shutdown waiting."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self._task, CLOSE_S)
            self._task = None
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.refresh(), CLOSE_S)  # what is pending goes before the process does
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(client), CLOSE_S)


async def _refresh_loop(ref: weakref.ref[RedisBanditState], interval: float) -> None:
    """Refresh until the state is closed or dropped: it holds the state weakly, so a Router that was built and
    discarded without being closed (a failed reload) does not keep refreshing forever."""
    while (state := ref()) is not None:
        with contextlib.suppress(Exception):  # a refresh must never die: the next one tries again
            await state.refresh()
        del state
        await asyncio.sleep(interval)


def build_bandit_state(state_config: Any, namespace: str, size: int) -> BanditState:
    """The store `state:` names: memory (this process) or Redis (every replica pointing at it)."""
    if state_config is not None and getattr(state_config, "store", "memory") == "redis":
        return RedisBanditState(state_config.redis_url, namespace, size)
    return MemoryBanditState(size)
