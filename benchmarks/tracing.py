"""What do traces cost? Three turnout processes side by side in one run, in front of one mock upstream, driven in
alternating rounds so the drift of a shared machine hits all alike: a git revision from before tracing (checked out
in a temporary worktree), the working tree with tracing off (no `observability`), and the working tree exporting
every span (sample_ratio 1) over OTLP/HTTP to a loopback receiver (turnout/testing/otlp_receiver.py), and again
keeping one trace in ten (sample_ratio 0.1). Reports the
CPU each turnout process spends per request — the exporter's thread included — and p50 latency.

    python benchmarks/tracing.py --base 82c48d3~1 --json bench-out/tracing.json [--rounds 8] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _load import drive, merge, mock_upstream, start, stop
from compare_revisions import ROOT, report, serve
from overhead import PROMPT, turnout_config

from turnout.testing import free_port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="a git revision from before tracing")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="requests per round and system")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="turnout-tracing-"))
    base_tree = tmp / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base_tree), args.base], check=True)
    up_port, rx_port = free_port(), free_port()
    off = turnout_config(f"http://127.0.0.1:{up_port}")
    on = {**off, "observability": {"otlp_endpoint": f"http://127.0.0.1:{rx_port}", "batch_delay_s": 1.0}}
    (tmp / "off.yaml").write_text(yaml.safe_dump(off))
    (tmp / "on.yaml").write_text(yaml.safe_dump(on))
    tenth = {**off, "observability": {**on["observability"], "sample_ratio": 0.1}}
    (tmp / "tenth.yaml").write_text(yaml.safe_dump(tenth))
    procs = [mock_upstream(up_port, tmp / "upstream.log"),
             start([sys.executable, "-m", "turnout.testing.otlp_receiver", "--port", str(rx_port)],
                   f"http://127.0.0.1:{rx_port}/_spans", tmp / "receiver.log")]
    results: dict[str, dict] = {}
    try:
        systems = {}
        for name, tree, config in ((f"{args.base} (before tracing)", base_tree, "off.yaml"),
                                   ("tracing off", ROOT, "off.yaml"), ("tracing on (every span exported)", ROOT,
                                                                      "on.yaml"),
                                   ("tracing on, sample_ratio 0.1", ROOT, "tenth.yaml")):
            systems[name] = serve(tree, tmp / config, tmp / f"{len(systems)}.log")
            procs.append(systems[name][0])
        for stream in (False, True):
            scenario = "stream" if stream else "non_stream"
            body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
            parts: dict[str, list] = {name: [] for name in systems}
            for _ in range(args.rounds):
                for name, (proc, port) in systems.items():
                    parts[name].append(drive(f"http://127.0.0.1:{port}/v1/chat/completions", body,
                                             requests=args.requests, concurrency=1, stream=stream, pids=[proc.pid]))
            for name in systems:
                results.setdefault(scenario, {})[name] = merge(parts[name]).as_dict()
        exported = len(httpx.get(f"http://127.0.0.1:{rx_port}/_spans", timeout=30).json()["spans"])
    finally:
        for proc in reversed(procs):
            stop(proc)
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False)
    results["meta"] = {"base": args.base, "rounds": args.rounds, "requests_per_round": args.requests,
                       "spans_received": exported, "machine": f"shared {os.cpu_count()}-core; read as ratios"}
    report(results, args.json, f"traces: {args.rounds} alternating rounds, concurrency 1, {exported} spans received")


if __name__ == "__main__":
    main()
