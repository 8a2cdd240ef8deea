"""Did a change make one scenario cheaper or dearer per request? compare_revisions.py for any scenario config: the
working tree and a git revision (in a temporary worktree) each serve `benchmarks/configs/<scenario>.yaml` in front
of one loopback mock upstream, and are driven with the scenario benchmark's 500 LLMRouter prompts (plain
requests) in alternating rounds, so the drift of a shared machine hits both alike. Reports each turnout
process's CPU per request (its process tree, from /proc) and the latencies, per concurrency.

    python benchmarks/compare_scenario.py --base HEAD~3 --scenario neural --json bench-out/compare-neural.json
        [--rounds 6] [--requests 300] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import alternating, mock_upstream, stop
from compare_revisions import serve_both
from scenarios import bodies, load_prompts

from turnout.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the git revision to compare the working tree with")
    parser.add_argument("--scenario", default="neural", help="a config in benchmarks/configs (without .yaml)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300, help="requests per round, system and concurrency")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    prompts = load_prompts(args.shared, 500)[0]
    tmp = Path(tempfile.mkdtemp(prefix="turnout-compare-"))
    base_tree = tmp / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base], check=True)
    up_port = free_port()
    config = tmp / f"{args.scenario}.yaml"
    text = (Path(__file__).parent / "configs" / f"{args.scenario}.yaml").read_text()
    config.write_text(text.replace("${UPSTREAM}", f"http://127.0.0.1:{up_port}"))
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    results: dict[str, dict] = {}
    try:
        systems = serve_both(args.base, base_tree, config, tmp, procs)
        results.update(alternating(systems, bodies(prompts, "auto", False), levels, rounds=args.rounds,
                                   requests=args.requests))
    finally:
        for proc in reversed(procs):
            stop(proc)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
    results["meta"] = {"base": args.base, "scenario": args.scenario, "rounds": args.rounds,
                       "requests_per_round": args.requests, "prompts": len(prompts),
                       "machine": f"shared {os.cpu_count()}-core; read as ratios"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    table = Table(title=f"{args.scenario}: {args.base} vs the working tree, {args.rounds} alternating rounds")
    for col in ("concurrency", "system", "CPU ms/request", "req/s", "p50 ms", "p99 ms"):
        table.add_column(col)
    for concurrency in levels:
        for name, r in results[f"c{concurrency}"].items():
            table.add_row(str(concurrency), name, f"{r['cpu_ms_per_request']:.3f}", f"{r['rps']:.0f}",
                          f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
