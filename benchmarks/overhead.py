"""How much latency and throughput does turnout cost? The same requests go to the mock upstream directly
and through turnout (benchmarks/configs/heuristic.yaml), non-stream and stream, at concurrency 1 and 32, with
the lean load generator of benchmarks/_load.py (wrk when installed); the CPU columns are turnout's own per
request and the load generator's. For every scenario side by side with the floor and the peers, see
benchmarks/scenarios.py.

    python benchmarks/overhead.py --json bench-out/overhead.json [--requests 500] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import default_generator, drive, merge, mock_upstream, start, stop

from turnout.testing import free_port

PROMPT = "Explain the difference between a process and a thread, briefly, in two sentences for a new engineer."


def turnout_config(upstream: str) -> dict:
    """The heuristic-signal scenario's config (benchmarks/configs/heuristic.yaml) in front of `upstream`."""
    text = (Path(__file__).parent / "configs" / "heuristic.yaml").read_text()
    return yaml.safe_load(text.replace("${UPSTREAM}", upstream))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the results")
    parser.add_argument("--requests", type=int, default=500, help="requests per scenario")
    parser.add_argument("--workers", type=int, default=1, help="turnout worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/turnout rounds per scenario")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="turnout-bench-"))
    up_port, t_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    config = tmp / "bench.yaml"
    config.write_text(yaml.safe_dump(turnout_config(upstream)))
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    try:
        procs.append(start([sys.executable, "-m", "turnout.cli", "serve", "--config", str(config), "--port",
                            str(t_port), "--workers", str(args.workers), "--log-level", "warning", "--no-watch"],
                           f"http://127.0.0.1:{t_port}/readyz", tmp / "turnout.log"))
        results: dict[str, dict] = {"direct": {}, "turnout": {}}
        targets = {"direct": (f"{upstream}/v1/chat/completions", "mock-small"),
                   "turnout": (f"http://127.0.0.1:{t_port}/v1/chat/completions", "auto")}
        for stream in (False, True):
            for concurrency in (1, 32):
                scenario = f"{'stream' if stream else 'non_stream'}_c{concurrency}"
                rounds: dict[str, list] = {system: [] for system in targets}
                for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both alike
                    for system, (url, model) in targets.items():
                        body = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
                        pids = [procs[1].pid] if system == "turnout" else []
                        rounds[system].append(drive(url, body, requests=args.requests // args.rounds,
                                                    concurrency=concurrency, stream=stream, pids=pids))
                for system, parts in rounds.items():
                    results[system][scenario] = merge(parts).as_dict()
    finally:
        for proc in reversed(procs):
            stop(proc)
    results["meta"] = {"requests_per_scenario": args.requests, "turnout_workers": args.workers,
                       "loadgen": default_generator(),
                       "machine": "shared 2-core; read as ratios", "upstream": "turnout.testing.mock_upstream"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    table = Table(title=f"turnout overhead ({args.requests} requests per row)")
    for col in ("scenario", "direct p50", "turnout p50", "added p50", "direct p99", "turnout p99",
                "direct req/s", "turnout req/s", "turnout CPU ms/req", "loadgen CPU ms/req", "errors"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for scenario, d in results["direct"].items():
        t = results["turnout"][scenario]
        table.add_row(scenario, f"{d['p50_ms']:.2f}", f"{t['p50_ms']:.2f}", f"{t['p50_ms'] - d['p50_ms']:+.2f}",
                      f"{d['p99_ms']:.2f}", f"{t['p99_ms']:.2f}", f"{d['rps']:.0f}", f"{t['rps']:.0f}",
                      f"{t['cpu_ms_per_request']:.2f}", f"{t['loadgen_cpu_ms_per_request']:.3f}",
                      f"{d['errors']}/{t['errors']}")
    Console(width=160).print(table)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
