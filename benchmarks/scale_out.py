"""Throughput of 1, 2 and 3 turnout replicas behind a real HAProxy (round robin) sharing one real redis-server, and
the CPU each request costs (issue 16).

    python benchmarks/scale_out.py --json bench-out/scale_out.json [--requests 3000] [--concurrency 64]

Each cell starts the deployment of tests/scale/cluster.py afresh (redis-server, the mock upstream in its own
process, N `turnout serve` processes, HAProxy), warms it, then drives `--requests` distinct non-streamed chat
requests through HAProxy with the closed-loop generator of benchmarks/_load.py (wrk when installed). Every
request is authenticated by a key with an rpm limit, so each one reserves and settles in Redis: the shared
state is on the measured path. CPU per request is measured per process family: the turnout replicas together
(the figure that should stay flat as replicas are added), HAProxy, redis-server, the mock upstream, the generator.

On this 2-core machine every process of the deployment and the generator share the two cores: one replica can
use at most one core (one event loop), so a second replica can add throughput only as far as the cores the mock,
HAProxy, Redis and the generator leave; a third cannot add any. Read the req/s as what the box allows, and the
CPU per request as the figure that carries to a real cluster (where each replica has its own cores)."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _load import _cpu, cpu_delta, default_generator, drive

from tests.scale.cluster import cluster

KEY = "sk-bench-scale-0123456789abcdef"


def config() -> dict[str, Any]:
    model = {"provider": "openai", "base_url": "{upstream}/v1", "api_key": "sk-upstream-0123456789abcdef"}
    return {
        "server": {"retry": {"attempts": 0}, "max_concurrent": 4096, "log_level": "warning"},
        "state": {"store": "redis", "redis_url": "{redis}", "namespace": "bench-scale"},
        "auth": {"keys": [{"name": "bench", "key": KEY, "rpm": 10_000_000}]},
        "models": {"small": {**model, "model": "mock-small", "cost": {"input": 0.1, "output": 0.2}},
                   "strong": {**model, "model": "mock-strong", "cost": {"input": 2.5, "output": 10}}},
        "signals": {"code": {"kind": "keyword", "words": ["def ", "stack trace", "compile"]}},
        "decisions": [{"name": "code", "priority": 50, "when": {"signal": "code"}, "models": ["strong"]},
                      {"name": "default", "models": ["small", "strong"]}],
    }


def bodies(n: int) -> list[dict[str, Any]]:
    texts = ["def f(x): why does this compile fail", "summarise the meeting notes", "what is a monad"]
    return [{"model": "auto", "messages": [{"role": "user", "content": f"{texts[i % 3]} {i}"}]} for i in range(n)]


def cell(replicas: int, requests: int, concurrency: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp, cluster(Path(tmp), config(), replicas) as c:
        procs = c._procs  # upstream, the replicas, haproxy (in that order)
        families = {"upstream": [procs[0].pid], "haproxy": [procs[-1].pid], "redis": [c.redis.proc.pid]}
        marks: dict[str, Any] = {}

        def snapshot() -> None:
            marks.update({name: _cpu(pids) for name, pids in families.items()})

        result = drive(c.lb_url + "/v1/chat/completions", bodies(requests + 200), requests=requests,
                       concurrency=concurrency, stream=False, headers={"authorization": f"Bearer {KEY}"},
                       pids=[r.proc.pid for r in c.replicas], before_counting=snapshot)
        others = {name: round(cpu_delta(marks[name], _cpu(pids)) / max(result.sent, 1) * 1000, 3)
                  for name, pids in families.items()}
    row = {"replicas": replicas, **result.as_dict()}
    row["cpu_ms_per_request_other"] = others
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    rows = [cell(n, args.requests, args.concurrency) for n in args.replicas]
    print(f"generator: {default_generator()}, {args.requests} requests a cell, concurrency {args.concurrency}")
    print(f"{'replicas':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} {'turnout ms/req':>14} "
          f"{'haproxy':>8} {'redis':>6} {'mock':>6} {'loadgen':>8}")
    for r in rows:
        o = r["cpu_ms_per_request_other"]
        print(f"{r['replicas']:>8} {r['rps']:>8.0f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['errors']:>6} "
              f"{r.get('cpu_ms_per_request', float('nan')):>14.3f} {o['haproxy']:>8.3f} {o['redis']:>6.3f} "
              f"{o['upstream']:>6.3f} {r['loadgen_cpu_ms_per_request']:>8.3f}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"generator": default_generator(), "requests": args.requests,
                                     "concurrency": args.concurrency, "cells": rows}, indent=2))


if __name__ == "__main__":
    main()
