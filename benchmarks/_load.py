"""A small closed-loop HTTP load generator (asyncio + httpx) and the process helpers the benchmarks share.
Loopback only: every target is 127.0.0.1."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Result:
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int
    requests: int
    latencies: list[float] = field(default_factory=list, repr=False)
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3), "rps": round(self.rps, 1),
                "errors": self.errors, "requests": self.requests}


def bench_args(doc: str, repeat: int):
    """The arguments every micro-benchmark takes: --json OUT, --shared DIR, --repeat N."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser.parse_args()


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of microsecond samples, rounded, as the benchmarks' JSON reports them."""
    return {"p50_us": round(statistics.median(samples), 1), "p99_us": round(percentile(samples, 99), 1)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def drive(url: str, body: dict[str, Any], *, requests: int, concurrency: int, stream: bool,
                headers: dict[str, str] | None = None) -> Result:
    """Send `requests` POSTs with `concurrency` workers; latency is until the last byte of the response."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers=headers) as client:
        remaining = requests

        async def one() -> None:
            nonlocal errors
            start = time.perf_counter()
            try:
                if stream:
                    async with client.stream("POST", url, json=body) as response:
                        async for _ in response.aiter_raw():
                            pass
                        ok = response.status_code == 200
                else:
                    response = await client.post(url, json=body)
                    ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors += 1

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one()

        for _ in range(min(20, requests)):  # warm the connections and code paths
            await one()
        latencies.clear()
        errors = 0
        remaining = requests
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return summarise(latencies, errors, requests, elapsed)


def summarise(latencies: list[float], errors: int, requests: int, elapsed: float) -> Result:
    if not latencies:
        return Result(float("nan"), float("nan"), 0.0, errors, requests, [], elapsed)
    return Result(statistics.median(latencies), percentile(latencies, 99), len(latencies) / elapsed, errors,
                  requests, latencies, elapsed)


def merge(parts: list[Result]) -> Result:
    """One result from several rounds: pooled latencies, total requests over total time."""
    return summarise([x for p in parts for x in p.latencies], sum(p.errors for p in parts),
                     sum(p.requests for p in parts), sum(p.elapsed_s for p in parts))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (the workers of a multi-process server)."""
    import os
    from pathlib import Path as P

    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = P(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in P(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


def start(cmd: list[str], ready_url: str, log: Path, timeout: float = 90) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(ready_url, timeout=1).status_code < 500:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{cmd[0]} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def mock_upstream(port: int, log: Path) -> subprocess.Popen[bytes]:
    return start([sys.executable, "-m", "turnout.testing.mock_upstream", "--port", str(port), "--no-record"],
                 f"http://127.0.0.1:{port}/_requests", log)
