"""Soak (-m slow): 10,000 requests through a real `turnout serve` process; its memory must not creep (RSS
growth < 5 % after warm-up) and its p99 latency must stay put."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import base_config
from tests.process import start_turnout
from turnout.testing import free_port

pytestmark = pytest.mark.slow


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_soak_10k(upstream, tmp_path):
    config = base_config(upstream.url)
    config["decisions"][1]["plugins"] = [{"semantic_cache": {"semantic": False, "max_entries": 500}}]
    config["outcomes"] = {"max_records": 500}  # bounded stores fill during the warm-up; what grows after is a leak
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    proc = start_turnout(path, port)
    rows = []
    try:
        async def batch(b: int) -> list[float]:
            limit = asyncio.Semaphore(16)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                async def one(i: int) -> float:
                    async with limit:
                        body = {"model": "auto", "stream": i % 3 == 0,
                                "messages": [{"role": "user", "content": f"soak {b}-{i} {'def ' if i % 5 == 0 else ''}"}]}
                        start = time.perf_counter()
                        r = await http.post("/v1/chat/completions", json=body)
                        assert r.status_code == 200
                        return time.perf_counter() - start
                return await asyncio.gather(*(one(i) for i in range(1000)))

        for b in range(10):
            times = sorted(asyncio.run(batch(b)))
            rows.append((rss_kb(proc.pid), times[int(0.99 * len(times))], statistics.median(times)))
    finally:
        proc.terminate()
        proc.wait(10)
    print("\nbatch, RSS MB, p99 ms, p50 ms:", [(i, r // 1024, round(p99 * 1000, 1), round(p50 * 1000, 1))
                                              for i, (r, p99, p50) in enumerate(rows)])
    warm = rows[1][0]
    assert max(r for r, _, _ in rows[2:]) < warm * 1.05, "RSS grew more than 5 % after warm-up"
    assert max(p for _, p, _ in rows[2:]) < 3 * statistics.median(p for _, p, _ in rows[1:]), "p99 drifted"
