"""Do long prompts slow short ones down? The latency of short prompts through one turnout process, alone and
while a burst of long prompts (64 KB of text with e-mail addresses, phone numbers, code and the `a@a.a.` run
that once made the PII regex quadratic) is served beside them — for each scenario config in benchmarks/configs/.
A CPU-heavy step held on the event loop shows here as a p99 for the short prompts that grows with the long ones.

    python benchmarks/burst.py --json bench-out/burst.json [--requests 1500] [--long-rate 20]
        [--configs heuristic,neural,neural+threads,cache]

`neural+threads` is the neural config with `server.cpu_processes: 0`: its long prompts' injection scan and PII
redaction in worker threads of the server's own process (sharing its GIL) rather than in a worker process.

Short prompts: concurrency 4, `--requests` of them, the aiohttp load generator (its latencies are per request).
Long prompts: `--long-rate` a second (open loop: the same burst whatever the system's speed) from a process of
its own, started first and stopped by its time bound. The Python floor (benchmarks/floor.py, a bare pass-through) takes the same burst: its ratio is
what moving 64 KB bodies costs on this machine, before any routing work. Before the burst, 30 long prompts one at
a time measure what one costs in the server process itself (where the event loop and its GIL are) and in its
worker processes. Loopback
only; every drive is bounded in count and time. The machine is shared: read the with/without ratio."""

from __future__ import annotations

import argparse
import json
import sys
import subprocess
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _load import cpu_seconds, drive, mock_upstream, own_cpu_seconds, percentile, start, stop  # noqa: E402

from turnout.testing import free_port  # noqa: E402

SHORT = "What is the capital of France, and why is it famous?"


def long_prompt(i: int, size: int = 64 * 1024) -> str:
    block = (f"Ticket {i}: customer jane.doe{i}@example.com called from +44 20 7946 0{i % 1000:03d} about "
             "def parse(x): return x.split(',')  # stack trace below\n" + "a@" + "a." * 200 + "\n")
    return (block * (size // len(block) + 1))[:size]


def body(text: str) -> dict:
    return {"model": "auto", "messages": [{"role": "user", "content": text}], "max_tokens": 16}


def start_system(name: str, upstream: str, work: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    if name == "floor":
        proc = start([sys.executable, str(HERE / "floor.py"), "--upstream", upstream, "--port", str(port)],
                     f"http://127.0.0.1:{port}/healthz", work / "floor.log")
        return proc, f"http://127.0.0.1:{port}/v1/chat/completions"
    config, _, variant = name.partition("+")
    loaded = yaml.safe_load((HERE / "configs" / f"{config}.yaml").read_text().replace("${UPSTREAM}", upstream))
    if variant == "threads":  # the long prompts' scans in worker threads instead of a worker process
        loaded.setdefault("server", {})["cpu_processes"] = 0
    elif variant:
        raise SystemExit(f"unknown variant {variant!r} in {name!r}: the one variant is +threads")
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(loaded))
    proc = start([sys.executable, "-m", "turnout.cli", "serve", "--config", str(path), "--port", str(port),
                  "--no-watch", "--log-level", "warning"], f"http://127.0.0.1:{port}/readyz", work / f"{name}.log")
    return proc, f"http://127.0.0.1:{port}/v1/chat/completions"


def measure(name: str, upstream: str, args, work: Path) -> dict:
    proc, url = start_system(name, upstream, work)
    try:
        shorts = [body(f"{SHORT} ({i})") for i in range(50)]
        alone = drive(url, shorts, requests=args.requests, concurrency=4, stream=False, generator="aiohttp",
                      pids=[proc.pid])
        long_cpu = long_prompt_cpu(url, proc.pid)
        seconds = max(10.0, alone.elapsed_s * 4)
        # the burst in a process of its own, so that its load generator shares no interpreter with the measurer
        burst = subprocess.Popen([sys.executable, __file__, "--burst", url, "--seconds", str(seconds),
                                  "--long-rate", str(args.long_rate)], stdout=subprocess.PIPE)
        time.sleep(1.0)  # the burst is under way
        beside = drive(url, shorts, requests=args.requests, concurrency=4, stream=False, generator="aiohttp",
                       warmup=8, max_seconds=seconds)
        out, _ = burst.communicate(timeout=seconds + 60)
        long_result = json.loads(out or b"{}")
        row = {"alone": _lat(alone), "beside_long": _lat(beside), "long_served": long_result.get("served", 0),
               "long_errors": long_result.get("errors"),
               "long_p50_ms": long_result.get("p50_ms"),
               "short_cpu_ms_per_request_alone": round(1000 * alone.server_cpu_s / max(1, alone.requests), 3),
               **long_cpu}
        row["p99_ratio"] = round(row["beside_long"]["p99_ms"] / max(row["alone"]["p99_ms"], 1e-6), 2)
        return row
    finally:
        stop(proc)


def long_prompt_cpu(url: str, pid: int, count: int = 30) -> dict:
    """CPU ms per long prompt, one at a time: of the server process itself (where its event loop runs) and of
    its worker processes (turnout.cpu's pool and its forkserver), after a warm-up that starts them."""
    longs = [body(long_prompt(i)) for i in range(count)]
    drive(url, longs[:5], requests=5, concurrency=1, stream=False, generator="aiohttp", warmup=0)
    time.sleep(1.5)  # a worker pool started by the warm-up is up now
    own, tree = own_cpu_seconds(pid), cpu_seconds(pid)
    drive(url, longs, requests=count, concurrency=1, stream=False, generator="aiohttp", warmup=0)
    own, tree = own_cpu_seconds(pid) - own, cpu_seconds(pid) - tree
    return {"long_cpu_ms_server_process": round(1000 * own / count, 2),
            "long_cpu_ms_workers": round(1000 * max(0.0, tree - own) / count, 2)}


def run_burst(url: str, seconds: float, rate: float) -> None:
    """Long prompts at a fixed rate (open loop, so the burst is the same for every system however fast it
    answers), for `seconds`; prints what was served."""
    import asyncio

    import aiohttp
    import orjson

    async def burst() -> dict:
        longs = [orjson.dumps(body(long_prompt(i))) for i in range(20)]
        latencies: list[float] = []
        errors = 0

        async def one(session: aiohttp.ClientSession, data: bytes) -> None:
            nonlocal errors
            began = time.perf_counter()
            try:
                async with session.post(url, data=data, headers={"content-type": "application/json"}) as r:
                    await r.read()
                    errors += r.status != 200
            except aiohttp.ClientError:
                errors += 1
            latencies.append((time.perf_counter() - began) * 1000)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
            tasks, began, i = [], time.perf_counter(), 0
            while time.perf_counter() - began < seconds:
                tasks.append(asyncio.create_task(one(session, longs[i % len(longs)])))
                i += 1
                await asyncio.sleep(max(0.0, began + i / rate - time.perf_counter()))
            await asyncio.gather(*tasks)
        latencies.sort()
        return {"served": len(latencies) - errors, "errors": errors,
                "p50_ms": round(latencies[len(latencies) // 2], 1) if latencies else None}

    print(json.dumps(asyncio.run(burst())))


def _lat(result) -> dict:
    lat = sorted(result.latencies)
    return {"p50_ms": round(percentile(lat, 50), 2) if lat else result.p50_ms,
            "p99_ms": round(percentile(lat, 99), 2) if lat else result.p99_ms,
            "errors": result.errors, "requests": result.requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--requests", type=int, default=1500, help="short prompts, alone and again beside")
    parser.add_argument("--long-rate", type=float, default=20.0, help="long prompts per second")
    parser.add_argument("--configs", default="heuristic,neural,neural+threads,cache",
                        help="configs in benchmarks/configs; NAME+threads: that config with server.cpu_processes 0")
    parser.add_argument("--burst", help=argparse.SUPPRESS)  # internal: be the burst of long prompts at this URL
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.burst:
        run_burst(args.burst, args.seconds, args.long_rate)
        return
    console = Console()
    with tempfile.TemporaryDirectory(prefix="turnout-burst-") as tmp:
        work = Path(tmp)
        mock_port = free_port()
        mock = mock_upstream(mock_port, work / "mock.log")
        try:
            rows = {name: measure(name, f"http://127.0.0.1:{mock_port}", args, work)
                    for name in ["floor", *args.configs.split(",")]}
        finally:
            stop(mock)
    table = Table(title="short prompts (concurrency 4), alone and beside a burst of 64 KB prompts")
    for col in ("scenario", "alone p50 / p99 ms", "beside long p50 / p99 ms", "p99 ratio", "long served",
                "long p50 ms", "short CPU ms/req", "long CPU ms: server / workers"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['alone']['p50_ms']} / {r['alone']['p99_ms']}",
                      f"{r['beside_long']['p50_ms']} / {r['beside_long']['p99_ms']}", f"{r['p99_ratio']}×",
                      str(r["long_served"]), str(r["long_p50_ms"]), str(r["short_cpu_ms_per_request_alone"]),
                      f"{r['long_cpu_ms_server_process']} / {r['long_cpu_ms_workers']}")
    console.print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
