"""The load generators and process helpers the benchmarks share. Loopback only: every target is 127.0.0.1.

Two closed-loop generators, both bounded in count and in time, both measuring latency until the last byte:
- `wrk` (C, one thread, a Lua script for the POST bodies; benchmarks/_wrk.py), the default when it is
  installed (`apt-get install wrk`): it spends ~0.03 ms of CPU per request, far below the cheapest system it
  measures;
- `aiohttp` (pure Python, a connection pool sized to the concurrency, pre-encoded bodies, uvloop when
  installed): ~0.1–0.2 ms per request, used when wrk is absent.
httpx, which the benchmarks used before, costs ~1 ms of client CPU per request: on two shared cores the client
then capped every system near the same figure. Each result says what the generator itself spent (its own CPU
per request) so a reader can check that it stayed far below the system it measured."""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson


@dataclass
class Result:
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int
    requests: int  # responses received (errors included)
    latencies: list[float] = field(default_factory=list, repr=False)
    elapsed_s: float = 0.0
    sent: int = 0  # requests the server was sent: a few more than `requests` when wrk stops mid-flight
    loadgen_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    marks: dict[str, int] = field(default_factory=dict)  # values of the watched response header

    @property
    def server_cpu_ms(self) -> float:
        """The system's CPU per request it was sent (its process tree, children included)."""
        return self.server_cpu_s / self.sent * 1000 if self.sent else float("nan")

    @property
    def loadgen_cpu_ms(self) -> float:
        return self.loadgen_cpu_s / self.requests * 1000 if self.requests else float("nan")

    def as_dict(self) -> dict[str, Any]:
        out = {"p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3), "rps": round(self.rps, 1),
               "errors": self.errors, "requests": self.requests, "sent": self.sent,
               "loadgen_cpu_ms_per_request": round(self.loadgen_cpu_ms, 4)}
        if self.server_cpu_s:
            out["cpu_ms_per_request"] = round(self.server_cpu_ms, 3)
        if self.marks:
            out["marks"] = dict(self.marks)
        return out


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
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def default_generator() -> str:
    return "wrk" if shutil.which("wrk") else "aiohttp"


def encode_bodies(body: dict[str, Any] | Sequence[dict[str, Any]]) -> list[bytes]:
    return [orjson.dumps(b) for b in ([body] if isinstance(body, dict) else body)]


def drive(url: str, body: dict[str, Any] | Sequence[dict[str, Any]], *, requests: int, concurrency: int,
          stream: bool | str, headers: dict[str, str] | None = None, pids: Sequence[int] = (),
          generator: str | None = None, mark_header: str | None = None, warmup: int | None = None,
          max_seconds: float = 120.0, before_counting: Callable[[], None] | None = None) -> Result:
    """POST `requests` bodies (cycling through `body` when it is a list) with `concurrency` connections, after
    `warmup` requests (default: twice the concurrency, at least 20) that open the connections and are not
    counted; `before_counting` runs in between. `stream`: True for chat's streams (complete when they end with
    [DONE]), or the text that marks the end of another protocol's stream (its last event's name). The bodies of the warm-up come first in the cycle, so distinct
    bodies stay distinct when there are enough of them. The CPU of the processes `pids` (and their children)
    is measured over the counted part."""
    from urllib.parse import urlsplit

    if urlsplit(url).hostname != "127.0.0.1":
        raise ValueError(f"benchmarks only target 127.0.0.1, not {url}")
    bodies = encode_bodies(body)
    warmup = max(20, 2 * concurrency) if warmup is None else warmup
    run = _run_wrk if (generator or default_generator()) == "wrk" else _run_aiohttp
    hdrs = {"content-type": "application/json", **(headers or {})}
    if warmup:
        run(url, bodies[:warmup] if len(bodies) > 1 else bodies, hdrs, warmup, concurrency, stream, None, max_seconds)
    if before_counting is not None:
        before_counting()
    shift = warmup % len(bodies)
    before = _cpu(pids)
    result = run(url, bodies[shift:] + bodies[:shift], hdrs, requests, concurrency, stream, mark_header, max_seconds)
    result.server_cpu_s = cpu_delta(before, _cpu(pids)) if pids else 0.0
    return result


def _run_wrk(url, bodies, headers, requests, concurrency, stream, mark_header, max_seconds) -> Result:
    from _wrk import run_wrk

    raw = run_wrk(url, bodies, headers, requests=requests, concurrency=concurrency, stream=stream,
                  mark_header=mark_header, max_seconds=max_seconds)
    time.sleep(0.2)  # the requests in flight when wrk stopped finish on the server before its CPU is read
    return raw


def _run_aiohttp(url, bodies, headers, requests, concurrency, stream, mark_header, max_seconds) -> Result:
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    began_cpu = time.process_time()
    result = runner(_aiohttp(url, bodies, headers, requests, concurrency, stream, mark_header, max_seconds))
    result.loadgen_cpu_s = time.process_time() - began_cpu
    return result


async def _aiohttp(url, bodies, headers, requests, concurrency, stream, mark_header, max_seconds) -> Result:
    import aiohttp

    latencies: list[float] = []
    done = (b"[DONE]" if stream is True else str(stream).encode()) if stream else b""
    marks: Counter[str] = Counter()
    errors = sent = 0
    deadline = time.monotonic() + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency, ttl_dns_cache=None)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60),
                                     cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False) as session:

        async def worker() -> None:
            nonlocal errors, sent
            while sent < requests and time.monotonic() < deadline:
                data = bodies[sent % len(bodies)]
                sent += 1
                start = time.perf_counter()
                try:
                    async with session.post(url, data=data, headers=headers) as response:
                        payload = await response.read()
                        ok = response.status == 200 and (not stream or done in payload[-4096:])
                        if mark_header:
                            marks[response.headers.get(mark_header, "-")] += 1
                except (TimeoutError, aiohttp.ClientError):
                    ok = False
                latencies.append((time.perf_counter() - start) * 1000)
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    result = summarise(latencies, errors, elapsed)
    result.sent, result.marks = sent, dict(marks)
    return result


def summarise(latencies: list[float], errors: int, elapsed: float, requests: int | None = None) -> Result:
    """`latencies` of every response; req/s counts the successful ones."""
    n = len(latencies) if requests is None else requests
    if not latencies:
        return Result(float("nan"), float("nan"), 0.0, errors, n, [], elapsed, n)
    return Result(statistics.median(latencies), percentile(latencies, 99), max(n - errors, 0) / elapsed, errors,
                  n, latencies, elapsed, n)


def merge(parts: list[Result]) -> Result:
    """One result from several rounds: pooled latencies, total requests over total time, CPU summed."""
    merged = summarise([x for p in parts for x in p.latencies], sum(p.errors for p in parts),
                       sum(p.elapsed_s for p in parts), sum(p.requests for p in parts))
    merged.sent = sum(p.sent for p in parts)
    merged.loadgen_cpu_s = sum(p.loadgen_cpu_s for p in parts)
    merged.server_cpu_s = sum(p.server_cpu_s for p in parts)
    merged.marks = dict(sum((Counter(p.marks) for p in parts), Counter()))
    return merged


def alternating(systems: dict[str, tuple[Any, int]], body: Sequence[dict[str, Any]], levels: Sequence[int], *,
                rounds: int, requests: int, path: str = "/v1/chat/completions") -> dict[str, dict[str, Any]]:
    """Drive each system {name: (process, port)} with `body` (plain requests), `rounds` times per concurrency
    level, each round starting one system later, so the drift of a shared machine hits all alike:
    {"c<level>": {name: merged result as a dict}}."""
    results: dict[str, dict[str, Any]] = {}
    order = list(systems.items())
    for concurrency in levels:
        parts: dict[str, list[Result]] = {name: [] for name in systems}
        for r in range(rounds):
            shift = r % len(order)
            for name, (proc, port) in order[shift:] + order[:shift]:
                parts[name].append(drive(f"http://127.0.0.1:{port}{path}", body, requests=requests,
                                         concurrency=concurrency, stream=False, pids=[proc.pid]))
        results[f"c{concurrency}"] = {name: merge(parts[name]).as_dict() for name in systems}
    return results


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of processes and their children (the workers of a multi-process server), to the
    nanosecond: the sum of each live thread's run time (/proc/PID/task/TID/schedstat) rather than the process
    totals in /proc/PID/stat, which count in 10 ms ticks — too coarse for a few hundred requests of a fraction
    of a millisecond each. A thread that ended takes its time with it, so `cpu_delta` checks against the ticks."""
    return _cpu(pids)[0]


def _cpu(pids: Sequence[int]) -> tuple[float, float, int]:
    """(nanosecond sum over live threads, tick-based process totals) in seconds, and how many processes."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    precise = coarse = 0.0
    tree = {p for root in pids for p in (root, *descendants(root))}
    for pid in tree:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            coarse += (int(fields[11]) + int(fields[12])) / tick
            precise += own_cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return precise, coarse, len(tree)


def own_cpu_seconds(pid: int) -> float:
    """CPU seconds of the process `pid` itself, every live thread of it, to the nanosecond; not its children (a
    thread that ends while it is read is left out)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except OSError:
            continue
    return total / 1e9


def cpu_delta(before: tuple[float, float, int], after: tuple[float, float, int]) -> float:
    """CPU spent between two `_cpu` readings: the precise figure, unless the ticks show more than their rounding
    (under a tick per process and reading) can explain: a thread ended in between, taking its nanoseconds."""
    precise, coarse = after[0] - before[0], after[1] - before[1]
    rounding = 0.011 * (before[2] + after[2])
    return coarse if coarse - precise > rounding else precise


def rss_mb(*pids: int) -> float:
    """Resident memory of processes and their children, MB."""
    total, todo = 0, list(pids)
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total / 1024


def start(cmd: list[str], ready_url: str, log: Path, timeout: float = 90,
          env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(ready_url, timeout=1).status_code < 500:
                    return proc
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{Path(cmd[0]).name} did not start within {timeout:.0f} s:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.2)
    except BaseException:  # interrupted too: a server left running would hold its port and CPU
        stop(proc)
        raise


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                children = [int(c) for c in (task / "children").read_text().split()]
                out += children
                todo += children
        except (OSError, ValueError):
            continue
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server and every process it started (a worker left behind would keep its port and CPU)."""
    import os
    import signal

    children = descendants(proc.pid)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def mock_upstream(port: int, log: Path) -> subprocess.Popen[bytes]:
    return start([sys.executable, "-m", "turnout.testing.mock_upstream", "--port", str(port), "--no-record"],
                 f"http://127.0.0.1:{port}/_requests", log)
