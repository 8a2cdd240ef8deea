"""Head to head: turnout against LiteLLM's proxy (and RouteLLM's OpenAI server when it installs), each in front
of the same loopback mock upstream, driven with identical load in one run.

    python benchmarks/peers/run.py --json bench-out/peers.json [--requests 2000] [--workers 2]
        [--concurrency 1,16,64] [--venvs bench-out/peers]

Each peer is installed in its own virtualenv under --venvs (created on first use: `pip install
'litellm[proxy]'`; RouteLLM: `pip install torch==2.13.0 'routellm[serve]'`). Every system gets `--workers`
processes (LiteLLM `--num_workers`, turnout `--workers`); RouteLLM's server runs as one process (its
`--workers` children exit at start: the module parses its command line at import). turnout runs a
heuristic-signal decision config (keyword + context-length signals, two decisions) and routes `model: auto`;
LiteLLM and RouteLLM get `model: small` mapped to the same upstream. Latency is until the last byte; "added"
is the system's minus the direct p50/p99 at the same concurrency. The load generator, the mock and the system
under test share this machine's cores: compare the ratios, not the absolute figures."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _load import drive, mock_upstream, start, stop  # noqa: E402
from overhead import PROMPT, turnout_config  # noqa: E402

from turnout.testing import free_port  # noqa: E402

MASTER_KEY = "sk-bench-master-key-0123456789"


def venv(path: Path, packages: list[list[str]], console: Console) -> Path | None:
    python = path / "bin" / "python"
    if python.exists():
        return python
    console.print(f"installing into {path}: {' then '.join(' '.join(p) for p in packages)}")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        for group in packages:
            subprocess.run([str(python), "-m", "pip", "install", "-q", *group], check=True)
    except subprocess.CalledProcessError as exc:
        console.print(f"[yellow]could not install into {path}: {exc}[/yellow]")
        return None
    return python


def start_litellm(python: Path, upstream: str, port: int, workers: int, tmp: Path):
    config = {"model_list": [{"model_name": "small", "litellm_params": {
                  "model": "openai/mock-small", "api_base": f"{upstream}/v1", "api_key": "sk-upstream"}}],
              "litellm_settings": {"drop_params": True, "telemetry": False, "set_verbose": False}}
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    os.environ.update({"LITELLM_MASTER_KEY": MASTER_KEY, "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                       "LITELLM_LOG": "ERROR"})
    litellm = python.parent / "litellm"
    return start([str(litellm), "--config", str(path), "--port", str(port), "--num_workers", str(workers)],
                 f"http://127.0.0.1:{port}/health/readiness", tmp / "litellm.log", timeout=180)


def start_routellm(python: Path, upstream: str, port: int, tmp: Path):
    # the `random` router: RouteLLM's learned routers embed prompts through OpenAI's API, which is off limits
    # here (no network); its server forwards through LiteLLM's SDK to --base-url
    os.environ.update({"OPENAI_API_KEY": "sk-upstream", "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    return start([str(python), "-m", "routellm.openai_server", "--routers", "random", "--strong-model",
                  "openai/mock-strong", "--weak-model", "openai/mock-small", "--port", str(port), "--base-url",
                  f"{upstream}/v1", "--api-key", "sk-upstream"],
                 f"http://127.0.0.1:{port}/v1/models", tmp / "routellm.log", timeout=240)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--venvs", type=Path, default=Path("bench-out/peers"))
    parser.add_argument("--skip-routellm", action="store_true")
    args = parser.parse_args()
    console = Console()
    tmp = Path(tempfile.mkdtemp(prefix="turnout-peers-"))
    args.venvs.mkdir(parents=True, exist_ok=True)
    litellm_python = venv(args.venvs / "litellm", [["litellm[proxy]"]], console)
    routellm_python = None if args.skip_routellm else venv(
        args.venvs / "routellm", [["torch==2.13.0"], ["routellm[serve]"]], console)

    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    systems: dict[str, dict] = {"direct": {"url": f"{upstream}/v1/chat/completions", "model": "mock-small",
                                           "how": "the mock upstream itself"}}
    try:
        port = free_port()
        config = tmp / "turnout.yaml"
        config.write_text(yaml.safe_dump(turnout_config(upstream)))
        procs.append(start([sys.executable, "-m", "turnout.cli", "serve", "--config", str(config), "--port", str(port),
                            "--workers", str(args.workers), "--log-level", "warning", "--no-watch"],
                           f"http://127.0.0.1:{port}/readyz", tmp / "turnout.log"))
        systems["turnout"] = {"url": f"http://127.0.0.1:{port}/v1/chat/completions", "model": "auto",
                              "how": f"turnout serve --workers {args.workers}, heuristic-signal decisions"}
        if litellm_python:
            port = free_port()
            procs.append(start_litellm(litellm_python, upstream, port, args.workers, tmp))
            systems["litellm"] = {"url": f"http://127.0.0.1:{port}/v1/chat/completions", "model": "small",
                                  "headers": {"authorization": f"Bearer {MASTER_KEY}"},
                                  "how": f"litellm --num_workers {args.workers} (proxy, no database)"}
        if routellm_python:
            try:
                port = free_port()
                procs.append(start_routellm(routellm_python, upstream, port, tmp))
                systems["routellm"] = {"url": f"http://127.0.0.1:{port}/v1/chat/completions",
                                       "model": "router-random-0.5",
                                       "how": "routellm.openai_server (one process), random router"}
            except RuntimeError as exc:
                console.print(f"[yellow]RouteLLM's server did not start: {str(exc)[-300:]}[/yellow]")

        results: dict = {}
        for stream in (False, True):
            for c in (int(x) for x in args.concurrency.split(",")):
                scenario = f"{'stream' if stream else 'non-stream'} c{c}"
                results[scenario] = {}
                for name, system in systems.items():
                    body = {"model": system["model"], "stream": stream,
                            "messages": [{"role": "user", "content": PROMPT}]}
                    result = asyncio.run(drive(system["url"], body, requests=args.requests, concurrency=c,
                                               stream=stream, headers=system.get("headers")))
                    results[scenario][name] = result.as_dict()
                    console.print(f"{scenario:16} {name:9} p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                                  f"{result.rps:7.1f} req/s  errors {result.errors}")
    finally:
        for proc in reversed(procs):
            stop(proc)

    report = {"requests": args.requests, "workers": args.workers, "cores": os.cpu_count(),
              "systems": {k: v["how"] for k, v in systems.items()}, "scenarios": results, "ratios": {}}
    table = Table(title=f"added latency vs direct and throughput ({args.requests} requests per cell)")
    for col in ("scenario", "system", "added p50 ms", "added p99 ms", "req/s", "p50 added ÷ turnout's",
                "turnout req/s ÷ its"):
        table.add_column(col)
    for scenario, by_system in results.items():
        direct = by_system["direct"]
        added = {n: (r["p50_ms"] - direct["p50_ms"], r["p99_ms"] - direct["p99_ms"]) for n, r in by_system.items()}
        mine = added.get("turnout", (float("nan"), 0))
        report["ratios"][scenario] = {}
        for name, r in by_system.items():
            if name == "direct":
                continue
            ratio_latency = added[name][0] / mine[0] if mine[0] > 0 else float("nan")
            ratio_rps = by_system["turnout"]["rps"] / r["rps"] if r["rps"] else float("nan")
            r["added_p50_ms"], r["added_p99_ms"] = round(added[name][0], 3), round(added[name][1], 3)
            if name != "turnout":
                report["ratios"][scenario][name] = {"added_p50_vs_turnout": round(ratio_latency, 2),
                                                    "turnout_rps_vs_it": round(ratio_rps, 2)}
            table.add_row(scenario, name, f"{added[name][0]:.2f}", f"{added[name][1]:.2f}", f"{r['rps']:.0f}",
                          "1" if name == "turnout" else f"{ratio_latency:.1f}×",
                          "1" if name == "turnout" else f"{ratio_rps:.1f}×")
    console.print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
