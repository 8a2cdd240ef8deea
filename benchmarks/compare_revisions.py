"""Did a change make turnout cheaper or dearer per request? Two revisions served side by side in one run: the
working tree and a git revision (checked out in a temporary worktree), in front of one mock upstream, driven
in alternating rounds so the drift of a shared machine hits both alike. Reports the CPU each turnout process
spends per request (steadier than wall-clock latency here) and p50 latency. Beside the pooled figure, the median
of the rounds' own figures: on a shared machine a round that another job's burst slowed moves it less.

    python benchmarks/compare_revisions.py --base HEAD~3 --json bench-out/compare.json [--rounds 8] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import drive, merge, mock_upstream, start, stop
from overhead import PROMPT, turnout_config

from turnout.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


def serve(tree: Path, config: Path, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env_python = [sys.executable, "-m", "turnout.cli", "serve", "--config", str(config), "--port", str(port),
                  "--workers", "1", "--log-level", "warning", "--no-watch"]
    # cwd too: `python -m` puts the working directory ahead of PYTHONPATH, so from the repository's root both
    # sides would otherwise serve the working tree
    proc = start(["env", f"PYTHONPATH={tree}", *env_python], f"http://127.0.0.1:{port}/readyz", log, cwd=tree)
    return proc, port



def serve_both(base: str, base_tree: Path, config: Path, tmp: Path, procs: list) -> dict[str, tuple]:
    """The base revision's tree and the working tree, each serving `config`: {name: (process, port)}; each
    process is appended to `procs` as it starts, so a failure later still stops it."""
    systems: dict[str, tuple] = {}
    for name, tree in ((base, base_tree), ("working tree", ROOT)):
        proc, port = serve(tree, config, tmp / f"{len(systems)}.log")
        procs.append(proc)
        systems[name] = (proc, port)
    return systems

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare the working tree with")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="requests per round and system")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="turnout-compare-"))
    base_tree = tmp / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base], check=True)
    up_port = free_port()
    config = tmp / "bench.yaml"
    config.write_text(yaml.safe_dump(turnout_config(f"http://127.0.0.1:{up_port}")))
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    results: dict[str, dict] = {}
    try:
        systems = serve_both(args.base, base_tree, config, tmp, procs)
        for stream in (False, True):
            scenario = "stream" if stream else "non_stream"
            body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
            parts: dict[str, list] = {name: [] for name in systems}
            for _ in range(args.rounds):
                for name, (proc, port) in systems.items():
                    parts[name].append(drive(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                             requests=args.requests, concurrency=1, stream=stream, pids=[proc.pid]))
            for name in systems:
                rounds = [p.server_cpu_ms for p in parts[name]]
                results.setdefault(scenario, {})[name] = {
                    **merge(parts[name]).as_dict(), "cpu_ms_per_request_rounds": [round(r, 4) for r in rounds],
                    "cpu_ms_per_request_median_round": round(statistics.median(rounds), 4)}
    finally:
        for proc in reversed(procs):
            stop(proc)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
    results["meta"] = {"base": args.base, "rounds": args.rounds, "requests_per_round": args.requests,
                       "machine": f"shared {os.cpu_count()}-core; read as ratios"}
    report(results, args.json, f"{args.base} vs the working tree, concurrency 1, {args.rounds} alternating rounds")


def report(results: dict, path: Path, title: str) -> None:
    """Write the JSON and print the table: per scenario and system, CPU ms per request and latencies."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    table = Table(title=title)
    for col in ("scenario", "system", "CPU ms/request", "median round", "p50 ms", "p99 ms"):
        table.add_column(col)
    for scenario in ("non_stream", "stream"):
        for name, r in results[scenario].items():
            median = r.get("cpu_ms_per_request_median_round")  # (other benchmarks' results share this table)
            table.add_row(scenario, name, f"{r['cpu_ms_per_request']:.3f}",
                          "" if median is None else f"{median:.3f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
