"""What a plan costs in the server: latency and CPU per request of each plan (docs/plans.md) side by side with a
single-model decision, through one real `turnout serve` process in front of the mock upstream's scripted
answers (turnout/testing/mock_scripted.py), in one run, as ratios to the single-model decision.

    python benchmarks/plans.py --json bench-out/plans.json [--requests 300] [--rounds 3] [--no-stream]
        [--loadgen wrk|aiohttp] [--only single,cascade_accept,...]

One server, one decision per case, each matched by a keyword tag in the prompt (so every case pays the same
signal and decision work); the scripted directives make each case do what it names:

  single           one model, no plan
  cascade_accept   cascade cheap → mid → strong, `format` judge; cheap's answer passes: one call
  cascade_3        the same; cheap and mid answer empty (rejected), strong passes: three calls
  vote             fanout over three models, `vote`
  judge_pick       fanout over three models, then a picker model (`judge_pick`): four calls
  fuse             fanout over three models, then a fuse model writes the answer: four calls
  first_valid      fanout race over three models, `format` judge; the first to pass wins, the rest cancelled
  multi_round      coordinator strong asks cheap once (a tool call), then answers: three calls

Every response's `x-turnout-plan-attempts` header is counted (the `marks` in the JSON), so a reader can check that
each case ran the attempts it claims. Concurrency 1, closed loop; each case is `--requests` counted requests per
round (after a warm-up), the cases visited in a rotated order each round so the drift of a shared machine hits
all alike. Columns: p50/p99 latency, the server's CPU ms per request (its process tree, /proc), the mock
upstream's CPU ms per request (it answers every attempt), the load generator's own CPU ms per request (wrk by
default, ~0.03 ms: far below the server's), and the ratios of the server's CPU and p50 to `single`'s."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _load import (
    _cpu,
    cpu_delta,
    default_generator,
    drive,
    merge,
    mock_upstream,
    start,
    stop,
)
from compare_revisions import report

from turnout.testing import free_port

PRICES = {"cheap": (0.1, 0.2), "mid": (1.0, 2.0), "strong": (5.0, 15.0), "judge": (0.5, 1.0)}
THREE = ["cheap", "mid", "strong"]
QUESTION = "What is 2+2? Reply with the number."
# case: (plan or None for a single model, the decision's models, the prompt's scripted directives)
CASES: dict[str, tuple[dict[str, Any] | None, list[str], str]] = {
    "single": (None, ["mid"], "#as:mock-mid=say:right"),
    "cascade_accept": ({"name": "cascade", "params": {"models": THREE, "judge": {"name": "format"}}}, THREE,
                       "#as:mock-cheap=say:right"),
    "cascade_3": ({"name": "cascade", "params": {"models": THREE, "judge": {"name": "format"}}}, THREE,
                  "#as:mock-cheap=say:empty #as:mock-mid=say:empty #as:mock-strong=say:right"),
    "vote": ({"name": "fanout", "params": {"models": THREE, "mode": "vote"}}, THREE,
             "#as:mock-cheap=say:right #as:mock-mid=say:wrong #as:mock-strong=say:right"),
    "judge_pick": ({"name": "fanout", "params": {"models": THREE, "mode": "judge_pick", "judge_model": "judge"}},
                   THREE, "#as:mock-judge=say:two"),
    "fuse": ({"name": "fanout", "params": {"models": THREE, "mode": "fuse", "fuse_model": "judge"}}, THREE,
             "#as:mock-judge=say:right"),
    "first_valid": ({"name": "fanout", "params": {"models": THREE, "mode": "first_valid"}}, THREE,
                    "#as:mock-mid=sleep:0.2 #as:mock-strong=sleep:0.2"),
    "multi_round": ({"name": "multi_round", "params": {"models": ["strong", "cheap"], "coordinator": "strong"}},
                    ["strong", "cheap"], "#as:mock-strong=call:ask_cheap #as:mock-cheap=say:right"),
}
MARK = "x-turnout-plan-attempts"


def tag(case: str) -> str:
    return f"plantag{case.replace('_', '')}x"  # no tag is a substring of another


def config(upstream: str, cases: list[str]) -> dict[str, Any]:
    decisions = []
    for i, case in enumerate(cases):  # distinct priorities: no two decisions "can match together" warnings
        plan, models, _ = CASES[case]
        decision: dict[str, Any] = {"name": case, "priority": 100 - i, "when": {"signal": f"is_{case}"}, "models": models}
        if plan is not None:
            decision["plan"] = plan
        decisions.append(decision)
    decisions.append({"name": "default", "models": ["mid"]})
    return {
        "server": {"log_level": "warning", "retry": {"attempts": 0}},
        "models": {name: {"provider": "openai", "base_url": f"{upstream}/scripted/v1", "model": f"mock-{name}",
                          "cost": {"input": i, "output": o}} for name, (i, o) in PRICES.items()},
        "signals": {f"is_{case}": {"kind": "keyword", "words": [tag(case)]} for case in cases},
        "decisions": decisions,
    }


def body(case: str, stream: bool) -> dict[str, Any]:
    return {"model": "auto", "stream": stream,
            "messages": [{"role": "user", "content": f"{tag(case)} {QUESTION} {CASES[case][2]}"}]}


def measure(url: str, cases: list[str], server_pid: int, mock_pid: int, *, requests: int, rounds: int,
            stream: bool, generator: str) -> dict[str, dict[str, Any]]:
    parts: dict[str, list] = {case: [] for case in cases}
    mock_cpu: dict[str, float] = dict.fromkeys(cases, 0.0)
    for r in range(rounds):
        for case in cases[r % len(cases):] + cases[:r % len(cases)]:
            marks: dict[str, tuple] = {}
            result = drive(url, body(case, stream), requests=requests, concurrency=1, stream=stream,
                           pids=[server_pid], generator=generator, mark_header=MARK,
                           before_counting=lambda m=marks: m.setdefault("before", _cpu([mock_pid])))
            mock_cpu[case] += cpu_delta(marks["before"], _cpu([mock_pid]))
            parts[case].append(result)
    out: dict[str, dict[str, Any]] = {}
    for case in cases:
        merged = merge(parts[case])
        row = merged.as_dict()
        row["mock_cpu_ms_per_request"] = round(mock_cpu[case] / merged.sent * 1000, 3) if merged.sent else None
        out[case] = row
    base = out.get("single")
    for row in out.values():
        if base:
            row["cpu_ratio_to_single"] = round(row["cpu_ms_per_request"] / base["cpu_ms_per_request"], 3)
            row["p50_ratio_to_single"] = round(row["p50_ms"] / base["p50_ms"], 3)
    return out


def run(cases: list[str], *, requests: int, rounds: int, streams: tuple[bool, ...], generator: str,
        tmp: Path) -> dict[str, Any]:
    up_port, port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    path = tmp / "plans.yaml"
    path.write_text(yaml.safe_dump(config(upstream, cases), sort_keys=False))
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    results: dict[str, Any] = {}
    try:
        server = start([sys.executable, "-m", "turnout.cli", "serve", "--config", str(path), "--port", str(port),
                        "--workers", "1", "--log-level", "warning", "--no-watch"],
                       f"http://127.0.0.1:{port}/readyz", tmp / "turnout.log", timeout=180)
        procs.append(server)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for stream in streams:
            results["stream" if stream else "non_stream"] = measure(
                url, cases, server.pid, procs[0].pid, requests=requests, rounds=rounds, stream=stream,
                generator=generator)
    finally:
        for proc in reversed(procs):
            stop(proc)
    results["meta"] = {
        "cases": {c: {"plan": CASES[c][0], "models": CASES[c][1], "directives": CASES[c][2]} for c in cases},
        "requests_per_round": requests, "rounds": rounds, "concurrency": 1, "load_generator": generator,
        "server": "turnout serve --workers 1, one process for every case", "upstream": "mock_scripted, loopback",
        "machine": f"shared {os.cpu_count()}-core; read as ratios"}
    return results


def ratio_table(results: dict[str, Any]) -> Table:
    table = Table(title="each plan against the single-model decision (server CPU and p50 as ratios)")
    for col in ("scenario", "case", "server CPU ms/req", "× single", "p50 ms", "× single", "mock CPU ms/req",
                "loadgen CPU ms/req", "errors", "attempts seen"):
        table.add_column(col)
    for scenario in ("non_stream", "stream"):
        for case, r in results.get(scenario, {}).items():
            marks = r.get("marks") or {}
            seen = max(marks, key=lambda k: marks[k]) if marks else ""
            table.add_row(scenario, case, f"{r['cpu_ms_per_request']:.3f}", f"{r.get('cpu_ratio_to_single', 0):.2f}",
                          f"{r['p50_ms']:.2f}", f"{r.get('p50_ratio_to_single', 0):.2f}",
                          f"{r['mock_cpu_ms_per_request']:.3f}", f"{r['loadgen_cpu_ms_per_request']:.3f}",
                          str(r["errors"]), f"{seen} ×{marks.get(seen, 0)}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("bench-out/plans.json"))
    parser.add_argument("--requests", type=int, default=300, help="counted requests per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-stream", action="store_true", help="non-stream requests only")
    parser.add_argument("--loadgen", choices=("wrk", "aiohttp"), default=None)
    parser.add_argument("--only", default=None, help="comma-separated cases (single is always run)")
    args = parser.parse_args()
    cases = list(CASES) if not args.only else ["single", *[c for c in args.only.split(",") if c != "single"]]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        raise SystemExit(f"--only: unknown case(s) {', '.join(unknown)} (valid: {', '.join(CASES)})")
    results = run(cases, requests=args.requests, rounds=args.rounds,
                  streams=(False,) if args.no_stream else (False, True), generator=args.loadgen or default_generator(),
                  tmp=Path(tempfile.mkdtemp(prefix="turnout-plans-")))
    if args.no_stream:
        results["stream"] = {}
    report(results, args.json, f"plans through the server, concurrency 1, {args.rounds} rotated rounds")
    Console(width=max(Console().width, 200)).print(ratio_table(results))


if __name__ == "__main__":
    main()
