"""`state.redis_url` on a Redis Sentinel set and on a Redis Cluster, each made of real redis-server processes on
loopback: two turnout servers share a rate limit and a breaker through them, as they do through one server."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import fresh_minute
from tests.plugins.conftest import RedisServer
from tests.server.test_access import ALICE, access_config
from tests.state.test_breakers import attempts, shared_config
from turnout.testing import free_port


def redis_cli(*args: str) -> str:
    return subprocess.run(["redis-cli", *args], capture_output=True, text=True, timeout=30, check=True).stdout


def wait_for(predicate, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def need_redis() -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server / redis-cli are not installed")


@pytest.fixture
def sentinel_url(tmp_path: Path) -> Iterator[str]:
    need_redis()
    master = RedisServer().start()
    port = free_port()
    conf = tmp_path / "sentinel.conf"  # a sentinel rewrites its file: it must be its own, writable
    conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor turnout-master 127.0.0.1 {master.port} 1\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: str(master.port) in _quiet("-p", str(port), "sentinel", "get-master-addr-by-name",
                                                    "turnout-master"), "the sentinel does not know its master")
        yield f"redis+sentinel://127.0.0.1:{port}/turnout-master/0"
    finally:
        sentinel.terminate()
        sentinel.wait(10)
        master.stop()


@pytest.fixture
def cluster_url(tmp_path: Path) -> Iterator[str]:
    need_redis()
    ports = [cluster_port() for _ in range(3)]
    procs = [subprocess.Popen(["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                               "--cluster-config-file", str(tmp_path / f"nodes-{p}.conf"), "--save", "",
                               "--appendonly", "no", "--dir", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p in ports:
            wait_for(lambda p=p: "PONG" in _quiet("-p", str(p), "ping"), "a cluster node did not start")
        redis_cli("--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
                  "--cluster-yes")
        wait_for(lambda: "cluster_state:ok" in _quiet("-p", str(ports[0]), "cluster", "info"),
                 "the cluster did not come up")
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def cluster_port() -> int:
    """A free port whose cluster bus port (itself + 10000) is a port too, and free."""
    import socket

    while True:
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _quiet(*args: str) -> str:
    try:
        return redis_cli(*args)
    except subprocess.SubprocessError:
        return ""


def two_replicas_agree(serve, upstream, url: str, namespace: str) -> None:
    config = access_config(upstream.url, rpm=3)
    config["state"] = {"store": "redis", "redis_url": url, "namespace": namespace}
    one, two = serve(config), serve(config)
    clients = [openai.OpenAI(base_url=s.url + "/v1", api_key=ALICE, max_retries=0) for s in (one, two, one)]
    fresh_minute()
    for c in clients:
        c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError):  # the limit is 3 a minute across both
        clients[1].chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    breakers = shared_config(upstream.url, url, cooldown_s=30)
    breakers["state"]["namespace"] = namespace + "-b"
    a, b = serve(breakers), serve(breakers)
    assert attempts(b, "hi") == "flaky:ok"
    assert attempts(a, f"down {time.monotonic_ns()} #flaky:2").endswith("small:ok")
    wait_for(lambda: attempts(b, "hi") == "flaky:skipped (breaker open),small:ok",
             "the breaker opened through one replica does not hold on the other", timeout_s=20.0)
    # here the Sentinel / Cluster URL is what is tested, not how fast (test_breakers.py's refresh check, on one
    # plain Redis): CI's loaded 2 cores once took over 3 s for the few requests in between (cooldown is 30 s)


def test_sentinel_url(serve, upstream, sentinel_url):
    two_replicas_agree(serve, upstream, sentinel_url, f"t-sentinel-{time.monotonic_ns()}")


def test_cluster_url_with_a_hash_tagged_namespace(serve, upstream, cluster_url):
    # the braces put every key of the namespace in one slot: scripts and MGETs over several keys work
    two_replicas_agree(serve, upstream, cluster_url, f"{{t-cluster-{time.monotonic_ns()}}}")


def test_a_sentinel_url_without_the_master_name_is_refused():
    from turnout.state.redis import connect

    with pytest.raises(ValueError, match="names the master"):
        connect("redis+sentinel://127.0.0.1:26379")


def writable(url: str) -> bool:
    import asyncio

    from turnout.state.redis import close, connect

    async def probe() -> bool:
        client = connect(url)
        try:
            await client.set("t-failover-probe", "1")
            return True
        except Exception:  # noqa: BLE001 - any failure means not yet
            return False
        finally:
            await close(client)

    return asyncio.run(probe())


def offset(port: int, field: str) -> int:
    for line in _quiet("-p", str(port), "info", "replication").splitlines():
        if line.startswith(field + ":"):
            return int(line.split(":")[1])
    return -1


@pytest.mark.slow
def test_a_sentinel_failover_is_followed_and_the_counts_survive_it(serve, upstream, tmp_path):
    """The master goes away; the Sentinel promotes its replica; turnout's client asks the Sentinel again and the
    rate limit goes on counting where it was (the replica had the counts)."""
    need_redis()
    master = RedisServer().start()
    replica_port = free_port()
    replica = subprocess.Popen(["redis-server", "--port", str(replica_port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--replicaof", "127.0.0.1", str(master.port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\nsentinel monitor m 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds m 1000\nsentinel failover-timeout m 5000\n")
    sentinel = subprocess.Popen(["redis-server", str(conf), "--sentinel"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: "master_link_status:up" in _quiet("-p", str(replica_port), "info", "replication"),
                 "the replica did not sync")
        wait_for(lambda: str(master.port) in _quiet("-p", str(port), "sentinel", "get-master-addr-by-name", "m"),
                 "the sentinel does not know its master")
        # a sentinel learns the replicas from the master's INFO, every 10 s: promotion needs it to know one
        wait_for(lambda: str(replica_port) in _quiet("-p", str(port), "sentinel", "replicas", "m"),
                 "the sentinel does not know the replica", timeout_s=30)
        if (left := 60 - time.time() % 60) < 30:  # rpm counts per UTC minute: all of this within one
            time.sleep(left + 0.2)
        config = access_config(upstream.url, rpm=4)
        config["state"] = {"store": "redis", "redis_url": f"redis+sentinel://127.0.0.1:{port}/m/0",
                           "namespace": f"t-failover-{time.monotonic_ns()}"}
        c = openai.OpenAI(base_url=serve(config).url + "/v1", api_key=ALICE, max_retries=0)

        def ask() -> None:
            c.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])

        ask(), ask()
        wait_for(lambda: offset(master.port, "master_repl_offset") == offset(replica_port, "slave_repl_offset"),
                 "the replica did not catch up")
        master.stop()
        wait_for(lambda: str(replica_port) in _quiet("-p", str(port), "sentinel", "get-master-addr-by-name", "m"),
                 "the sentinel did not promote the replica", timeout_s=30)
        # the Sentinel names the new master a moment before it reports it healthy (redis-py refuses a master it
        # flags down): requests in that moment are let through uncounted, as in any outage of the store
        wait_for(lambda: writable(f"redis+sentinel://127.0.0.1:{port}/m/0"), "the new master takes no writes")
        ask(), ask()  # on the new master: 4 of 4
        with pytest.raises(openai.RateLimitError):
            ask()
    finally:
        sentinel.terminate()
        replica.terminate()
        sentinel.wait(10)
        replica.wait(10)
        master.stop()
