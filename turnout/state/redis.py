"""What every Redis-backed store shares: the client, one exception for "Redis is not reachable now", a warning
throttled to one line per 10 s while it lasts, and one store per event loop (a client belongs to the loop that
opened its connections)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

log = logging.getLogger("turnout.state")


class StoreUnavailable(Exception):
    """The shared store cannot be reached right now."""


MAX_CONNECTIONS = 100  # per store and event loop; more concurrent commands wait for one to come free


def connect(url: str, timeout_s: float = 1.0) -> Any:
    """A client whose pool makes a command wait (up to `timeout_s`) for a free connection when all are busy: a
    plain pool fails it at once (MaxConnectionsError), and a limit check that fails lets its request through
    uncounted, so a stall of Redis under a burst let most of the burst through. A command that meets a dead
    connection is retried once, at once, on a new one: after a Redis restart every pooled connection is dead.
    Timeouts are not retried: a Redis that hangs costs one timeout, not two."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError

    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout_s, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), retries=1, supported_errors=(ConnectionError,)))
    return redis.Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections


class Guarded:
    """Awaits a Redis call; a Redis or network failure becomes StoreUnavailable, and a warning saying what
    the store does meanwhile, at most once per 10 s."""

    def __init__(self, what: str, meanwhile: str) -> None:
        self.what, self.meanwhile = what, meanwhile
        self._warned = 0.0

    async def __call__(self, coro: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            return await coro
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            now = time.monotonic()
            if now - self._warned > 10:
                self._warned = now
                log.warning("%s unavailable (%s); %s", self.what, type(exc).__name__, self.meanwhile)
            raise StoreUnavailable(str(exc)) from None


async def close(client: Any) -> None:
    try:
        await client.aclose()
    except Exception:  # noqa: BLE001 - closing a dead connection
        pass


def store_key(kind: str, url: str, namespace: str) -> tuple[Any, ...]:
    """Registry key of a store: memory stores by namespace (shared by every loop of the process), Redis stores
    also by URL and event loop."""
    if kind == "memory":
        return ("memory", namespace)
    try:
        loop_id = id(asyncio.get_running_loop())
    except RuntimeError:
        loop_id = 0
    return ("redis", url, namespace, loop_id)
