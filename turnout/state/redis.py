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
    """A client for `url`: `redis://`, `rediss://` or `unix://` (one server), `redis+sentinel://` (the master a
    set of Sentinels names) or `redis+cluster://` (a Redis Cluster); see `_sentinel` and `_cluster`.

    A one-server client's pool makes a command wait (up to `timeout_s`) for a free connection when all are busy: a
    plain pool fails it at once (MaxConnectionsError), and a limit check that fails lets its request through
    uncounted, so a stall of Redis under a burst let most of the burst through. A command that meets a dead
    connection is retried once, at once, on a new one: after a Redis restart every pooled connection is dead.
    Timeouts are not retried: a Redis that hangs costs one timeout, not two."""
    import redis.asyncio as redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError

    if url.startswith(("redis+sentinel://", "rediss+sentinel://")):
        return _sentinel(url, timeout_s)
    if url.startswith(("redis+cluster://", "rediss+cluster://")):
        return _cluster(url, timeout_s)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=timeout_s, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), retries=1, supported_errors=(ConnectionError,)))
    return redis.Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections


def _parse_many(url: str) -> tuple[bool, str | None, str | None, list[tuple[str, int]], list[str], dict[str, str]]:
    """`scheme://[user:password@]host:port[,host:port…]/path?query`: TLS or not, the credentials, the hosts,
    the path's parts and the query. The standard parsers take one host only."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    scheme, rest = url.split("://", 1)
    netloc, _, tail = rest.partition("/")
    user = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        name, _, secret = userinfo.partition(":")
        user, password = unquote(name) or None, unquote(secret) or None
    default_port = 26379 if "sentinel" in scheme else 6379
    hosts = []
    for part in netloc.split(","):
        if part.startswith("["):  # [IPv6]:port
            host, _, port = part[1:].partition("]")
            port = port.lstrip(":")
        else:
            host, _, port = part.partition(":")
        hosts.append((host or "127.0.0.1", int(port or default_port)))
    parts = urlsplit("x://h/" + tail)
    return (scheme.startswith("rediss"), user, password, hosts, [p for p in parts.path.split("/") if p],
            dict(parse_qsl(parts.query)))


def _sentinel(url: str, timeout_s: float) -> Any:
    """`redis+sentinel://[user:password@]s1:26379,s2:26379/<master name>[/<db>][?sentinel_password=…]`: the
    client asks the Sentinels for the master and asks again after a failover (redis-py's SentinelConnectionPool).
    The password is the master's; the Sentinels' own, when they have one, is `sentinel_password`."""
    from redis.asyncio.sentinel import Sentinel

    tls, user, password, hosts, path, query = _parse_many(url)
    if not path:
        raise ValueError("a redis+sentinel:// URL names the master after the hosts: redis+sentinel://host:26379/mymaster")
    sentinel_kwargs = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if query.get("sentinel_password"):
        sentinel_kwargs["password"] = query["sentinel_password"]
    sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, socket_timeout=timeout_s,
                        socket_connect_timeout=timeout_s, username=user, password=password, ssl=tls)
    return sentinel.master_for(path[0], db=int(path[1]) if len(path) > 1 else 0, max_connections=MAX_CONNECTIONS)


def _cluster(url: str, timeout_s: float) -> Any:
    """`redis+cluster://[user:password@]node1:6379[,node2:6379…]`: any reachable node; the client learns the
    slots and follows MOVED/ASK. Several of turnout's commands touch more than one key (scripts, MGET,
    pipelines), so every key must live in one slot: give `state.namespace` a hash tag, e.g. `{turnout}`."""
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    tls, user, password, hosts, _, _ = _parse_many(url)
    return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in hosts], username=user, password=password,
                        ssl=tls, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                        max_connections=MAX_CONNECTIONS)


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
