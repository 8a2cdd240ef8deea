"""What outcome records cost: `record()` alone (memory, memory with a redacted prompt, Redis with its writer's
batches counted), and CPU per request of a real `turnout serve` with records off, in memory and in Redis, side
by side (interleaved rounds, the server process's own CPU time from /proc).

    .venv/bin/python benchmarks/outcomes.py [--requests 1000] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import base_config
from tests.process import start_turnout
from turnout.config import parse_config
from turnout.context import RoutingContext
from turnout.pipeline import Router
from turnout.server import outcome_record
from turnout.testing import ServerThread, create_mock_upstream, free_port

PROMPT = "Please summarise this thread and mail it to jane.doe@example.com before Friday. " * 4


async def _record_cost(cfg: dict[str, Any], n: int) -> float:
    """µs of CPU per record() (and, for Redis, the writer's share) on one routed chat request."""
    router = Router.build(parse_config(cfg))
    ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": PROMPT}]})
    route = await router.route(ctx)
    store = router.outcomes
    exchange = SimpleNamespace(ctx=ctx, route=route, router=router, door=SimpleNamespace(name="chat"),
                               response_id="chatcmpl-x", ttft_s=None)
    usage = {"prompt_tokens": 80, "completion_tokens": 20}
    start = time.process_time()
    for i in range(n):
        ctx.request_id = f"{i:032x}"
        outcome_record.record(exchange, 200, 0.01, 1e-6, usage, None)  # type: ignore[arg-type]
        if i % 200 == 199:
            await store.flush()
    await store.flush()
    spent = time.process_time() - start
    await store.aclose()
    assert store.dropped == 0, store.dropped
    return spent / n * 1e6


def micro(upstream_url: str, n: int, redis_url: str | None) -> dict[str, float]:
    out = {}
    for name, outcomes, state in (("memory", {}, {}), ("memory_with_prompt", {"store_prompt": True}, {}),
                                  ("redis", {}, {"store": "redis", "redis_url": redis_url})):
        if state.get("store") == "redis" and redis_url is None:
            continue
        cfg = base_config(upstream_url)
        cfg["outcomes"] = {"max_records": n, **outcomes}
        cfg["state"] = {"namespace": f"bench{time.monotonic_ns()}", **state}
        out[name] = round(asyncio.run(_record_cost(cfg, n)), 2)
    return out


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(upstream_url: str, n: int, rounds: int, redis_url: str | None, folder: Path) -> dict[str, Any]:
    variants = {"off": ({"enabled": False}, {}), "memory": ({}, {})}
    if redis_url:
        variants["redis"] = ({}, {"store": "redis", "redis_url": redis_url})
    procs, urls = {}, {}
    for name, (outcomes, state) in variants.items():
        cfg = base_config(upstream_url)
        cfg["outcomes"] = outcomes
        cfg["state"] = {"namespace": f"bench-{name}-{time.monotonic_ns()}", **state}
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        port = free_port()
        procs[name], urls[name] = start_turnout(path, port), f"http://127.0.0.1:{port}"
    body = {"model": "auto", "messages": [{"role": "user", "content": "hello there, how are you?"}]}
    per_request: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with httpx.Client(timeout=30) as client:
            for name in variants:  # warm-up
                for _ in range(100):
                    client.post(urls[name] + "/v1/chat/completions", json=body).raise_for_status()
            for _ in range(rounds):
                for name in variants:
                    before = _cpu_s(procs[name].pid)
                    for _ in range(n):
                        client.post(urls[name] + "/v1/chat/completions", json=body).raise_for_status()
                    time.sleep(0.2)  # the Redis writer's last batch
                    per_request[name].append((_cpu_s(procs[name].pid) - before) / n * 1e6)
    finally:
        for proc in procs.values():
            proc.terminate()
            proc.wait(10)
    return {name: {"cpu_us_per_request_median": round(statistics.median(v), 1),
                   "rounds": [round(x, 1) for x in v]} for name, v in per_request.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    redis_proc, redis_url = None, None
    if shutil.which("redis-server"):
        port = free_port()
        redis_proc = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL)
        redis_url = f"redis://127.0.0.1:{port}/0"
        time.sleep(0.5)
    try:
        with ServerThread(create_mock_upstream()) as upstream, tempfile.TemporaryDirectory() as folder:
            result = {"record_us": micro(upstream.url, 20_000, redis_url),
                      "server": server_cpu(upstream.url, args.requests, args.rounds, redis_url, Path(folder))}
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
