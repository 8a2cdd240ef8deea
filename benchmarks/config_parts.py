"""What each part of a scenario config costs in the server: one `turnout serve` per variant of
`benchmarks/configs/<scenario>.yaml` — the whole config, without its plugins, without its signals (plugins kept),
with neither, and each signal alone (one decision on it, the rest to the default) — in front of one loopback mock
upstream, driven with the scenario benchmark's 500 LLMRouter prompts (plain requests) in alternating rounds, so
the drift of a shared machine hits every variant alike. Prints each variant's CPU per request (its process tree,
from /proc) and writes JSON; the differences between rows are what a part costs in place, beside what
benchmarks/neural_stages.py measures of the same steps in one process.

    python benchmarks/config_parts.py --json bench-out/config-parts.json [--scenario neural] [--rounds 6]
        [--requests 300] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import alternating, mock_upstream, stop
from compare_revisions import ROOT, serve
from scenarios import bodies, load_prompts

from turnout.testing import free_port


def variants(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The config's parts, each a config of its own."""
    default = {"name": "default", "models": [next(iter(config["models"]))]}
    bare = {k: v for k, v in config.items() if k not in ("signals", "plugins", "decisions")}
    out = {"whole config": config}
    if config.get("plugins"):
        out["without plugins"] = {k: v for k, v in config.items() if k != "plugins"}
        out["plugins, no signals"] = {**bare, "plugins": config["plugins"], "decisions": [default]}
    out["no signals, no plugins"] = {**bare, "decisions": [default]}
    for name, signal in (config.get("signals") or {}).items():
        out[f"signal {name} alone"] = {**bare, "signals": {name: signal}, "decisions": [
            {"name": name, "priority": 10, "when": {"signal": name}, "models": default["models"]}, default]}
    return {label: copy.deepcopy(v) for label, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", default="neural", help="a config in benchmarks/configs (without .yaml)")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--requests", type=int, default=300, help="requests per round, variant and concurrency")
    parser.add_argument("--concurrency", default="1,16")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    prompts = load_prompts(args.shared, 500)[0]
    tmp = Path(tempfile.mkdtemp(prefix="turnout-parts-"))
    up_port = free_port()
    text = (Path(__file__).parent / "configs" / f"{args.scenario}.yaml").read_text()
    config = yaml.safe_load(text.replace("${UPSTREAM}", f"http://127.0.0.1:{up_port}"))
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    systems: dict[str, tuple] = {}
    results: dict[str, dict] = {}
    try:
        for i, (label, part) in enumerate(variants(config).items()):
            path = tmp / f"{i}.yaml"
            path.write_text(yaml.safe_dump(part))
            proc, port = serve(ROOT, path, tmp / f"{i}.log")
            procs.append(proc)
            systems[label] = (proc, port)
        results.update(alternating(systems, bodies(prompts, "auto", False), levels, rounds=args.rounds,
                                   requests=args.requests))
    finally:
        for proc in reversed(procs):
            stop(proc)
    results["meta"] = {"scenario": args.scenario, "rounds": args.rounds, "requests_per_round": args.requests,
                       "prompts": len(prompts), "machine": f"shared {os.cpu_count()}-core; read the differences"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    table = Table(title=f"{args.scenario}: its parts, {args.rounds} alternating rounds, CPU ms per plain request")
    table.add_column("variant")
    for concurrency in levels:
        table.add_column(f"c{concurrency}", justify="right")
    for label in systems:
        table.add_row(label, *(f"{results[f'c{c}'][label]['cpu_ms_per_request']:.3f}" for c in levels))
    Console().print(table)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
