"""A whole deployment on loopback, from real parts: one redis-server, the mock upstream in its own process, N
`turnout serve` processes on one config, a real HAProxy in front (round robin, health-checked on /readyz, a
refused or dropped connection retried on another replica) and, when asked, a real Prometheus scraping each
replica. Used by tests/scale/test_scale_out.py and benchmarks/scale_out.py."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.plugins.conftest import RedisServer
from tests.process import start_turnout
from turnout.testing import free_port

HAPROXY = """global
  maxconn 4096
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  timeout queue 10s
  retries 3
  option redispatch 1
  # a replica that stopped accepting (SIGTERM) refuses the connection, or closes an idle kept-alive one as the
  # request goes out: both are retried on another replica
  retry-on conn-failure empty-response
frontend turnout
  bind 127.0.0.1:{port}
  default_backend replicas
backend replicas
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  # tolerant checks: a replica busy under load answers /readyz late, and one slow check must not take it out
  # (a stopped one is found by its refused connections, which are retried elsewhere, before its checks fail)
  timeout check 3s
  default-server check inter 500ms fall 3 rise 1
{servers}
"""


def wait_until(predicate: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Replica:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    config_path: Path
    lb_url: str
    upstream_url: str
    redis: RedisServer
    replicas: list[Replica]
    prometheus_url: str | None = None
    _procs: list[subprocess.Popen] = field(default_factory=list)

    def sigterm(self, index: int) -> None:
        self.replicas[index].proc.send_signal(signal.SIGTERM)


def upstream_process(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "turnout.testing.mock_upstream", "--port", str(port),
                             "--no-record"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/_streams") or proc.poll() is not None,
               "the mock upstream did not start")
    assert proc.poll() is None
    return proc


def haproxy_process(tmp: Path, port: int, replicas: list[Replica]) -> subprocess.Popen:
    servers = "\n".join(f"  server r{i} 127.0.0.1:{r.port}" for i, r in enumerate(replicas))
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(HAPROXY.format(port=port, servers=servers))
    with open(tmp / "haproxy.log", "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz") or proc.poll() is not None,
               "haproxy did not start")
    assert proc.poll() is None, (tmp / "haproxy.log").read_text()
    return proc


def prometheus_process(tmp: Path, port: int, replicas: list[Replica]) -> subprocess.Popen:
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"},
                                   "scrape_configs": [{"job_name": "turnout", "static_configs": [
                                       {"targets": [f"127.0.0.1:{r.port}" for r in replicas]}]}]}))
    with open(tmp / "prometheus.log", "wb") as log:
        proc = subprocess.Popen(["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                                 f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: _answers(f"http://127.0.0.1:{port}/-/ready") or proc.poll() is not None,
               "prometheus did not start", timeout_s=60)
    assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-2000:]
    return proc


def need(*tools: str) -> list[str]:
    return [t for t in tools if shutil.which(t) is None]


@contextlib.contextmanager
def cluster(tmp: Path, config: dict[str, Any], replicas: int = 3, prometheus: bool = False,
            log_level: str = "warning") -> Iterator[Cluster]:
    """`config` may name "{upstream}" and "{redis}" in strings: they are filled in here."""
    with contextlib.ExitStack() as stack:
        redis = RedisServer().start()
        stack.callback(redis.stop)
        upstream_port = free_port()
        procs = [upstream_process(upstream_port)]
        stack.callback(_stop_all, procs)
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        text = yaml.safe_dump(config).replace("{upstream}", upstream_url).replace("{redis}", redis.url)
        path = tmp / "turnout.yaml"
        path.write_text(text)
        started = []
        for _ in range(replicas):
            port = free_port()
            proc = start_turnout(path, port, log_level=log_level)
            procs.append(proc)
            started.append(Replica(proc, port, Path(f"{path}.{port}.log")))
        lb_port = free_port()
        procs.append(haproxy_process(tmp, lb_port, started))
        prometheus_url = None
        if prometheus:
            prom_port = free_port()
            procs.append(prometheus_process(tmp, prom_port, started))
            prometheus_url = f"http://127.0.0.1:{prom_port}"
        yield Cluster(path, f"http://127.0.0.1:{lb_port}", upstream_url, redis, started, prometheus_url, procs)


def _stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in reversed(procs):
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
