"""Every scenario side by side in one run: the mock upstream alone (direct), the Python floor (a bare aiohttp
pass-through, benchmarks/floor.py), turnout per scenario (benchmarks/configs/), and the peers (LiteLLM,
RouteLLM, Portkey), all in front of the same loopback mock, in alternating rounds.

    python benchmarks/scenarios.py --json bench-out/scenarios.json      # 5-8 minutes with the defaults
        [--requests 600] [--rounds 3] [--concurrency 1,16,64] [--no-stream] [--only heuristic,floor,...]
        [--loadgen wrk|aiohttp] [--venvs bench-out/peers] [--no-peers] [--workers 2]

turnout scenarios (one `turnout serve` process each, 1 worker unless said):
  heuristic     keyword + context-length signals, two decisions (configs/heuristic.yaml); also with 2 workers
  neural        jailbreak, domain and complexity signals on the request embedding + PII redaction (neural.yaml)
  cache miss    configs/cache.yaml, every prompt new: each request's prompt was never sent before
  cache hit     configs/cache.yaml, every prompt seen before: all prompts sent once, then repeated (exact hits)
  responses     heuristic.yaml driven through POST /v1/responses (translated to chat for the upstream)
  messages      heuristic.yaml driven through POST /v1/messages (Anthropic's API, translated likewise)
  cascade       heuristic.yaml with its default decision a two-model `cascade` whose first answer passes the
                `format` judge (configs/cascade.yaml): the plan's own cost when the cheap answer is accepted
Prompts: 500 LLMRouter queries (../shared/data/llmrouter, under 1,200 characters, seeded shuffle, no two alike
to the semantic cache) for every system; the cache-miss scenario has a second such set, and its cache is
emptied (DELETE /v1/cache?all=true) after each warm-up, so every counted request is a miss. Whether a cache scenario got what it claims is checked
on every response (x-turnout-cache) and reported.

Per system and concurrency: req/s, p50/p99 added to direct's, the system's own CPU ms per request (its
process tree from /proc, children included, over the counted requests) and the load generator's own CPU ms
per request (wrk by default: see benchmarks/_load.py). Each cell is `--requests` requests split over
`--rounds` rounds; every round visits the systems in a rotated order, so the drift of a shared machine hits all
alike. Each drive is bounded by its count and by --max-seconds. Compare ratios: load generator, mock and
system share this machine's cores."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
from _load import (
    Result,
    default_generator,
    drive,
    merge,
    mock_upstream,
    rss_mb,
    start,
    stop,
)
from systems import start_litellm, start_portkey, start_routellm

from turnout.testing import free_port

ROOT = HERE.parent
CACHE_HEADER = "x-turnout-cache"


@dataclass
class System:
    name: str
    how: str
    url: str
    model: str
    pids: list[int]
    headers: dict[str, str] = field(default_factory=dict)
    fresh_prompts: bool = False  # cache miss: the cache is emptied after each warm-up, then sent unseen prompts
    mark_header: str | None = None
    door: str = "chat"  # the inbound protocol it is driven with (DOORS)


def load_prompts(shared: Path, count: int, max_chars: int = 1200) -> tuple[list[str], list[str], dict]:
    """Two sets of distinct LLMRouter queries (seeded shuffle), each prompt unlike every other of its set: below
    the semantic cache's threshold by the cache's own default encoder, and another text once normalised. So a
    prompt the cache has not seen is a miss and one it has seen an exact hit, never a near-duplicate's
    semantic hit. The common set (`count` prompts) serves every system; the second, the cache-miss scenario,
    whose server sees nothing else and whose cache is emptied before each counted run."""
    from turnout.models.encoders import get_encoder
    from turnout.plugins.semantic_cache import SemanticCacheParams, normalise

    folder = shared / "llmrouter" / "query_data"
    lines = [line for split in ("train", "test")  # not splitlines(): queries hold U+2028
             for line in (folder / f"default_query_{split}.jsonl").read_text(encoding="utf-8").split("\n")]
    queries = sorted({q for line in lines if line.strip() and 0 < len(q := json.loads(line)["query"].strip()) <= max_chars})
    random.Random(0).shuffle(queries)
    params = SemanticCacheParams()
    vectors = get_encoder(params.encoder).encode(queries)

    def unlike(candidates: list[int], limit: int) -> list[int]:
        kept: list[int] = []
        seen: set[str] = set()
        for i in candidates:
            key = normalise(queries[i])
            if key in seen or (kept and float((vectors[kept] @ vectors[i]).max()) >= params.threshold):
                continue
            seen.add(key)
            kept.append(i)
            if len(kept) == limit:
                break
        return kept

    common = unlike(list(range(len(queries))), count)
    if len(common) < count:
        raise SystemExit(f"{folder} has only {len(common)} mutually dissimilar prompts under {max_chars} characters")
    taken = set(common)
    fresh = unlike([i for i in range(len(queries)) if i not in taken], len(queries))
    return [queries[i] for i in common], [queries[i] for i in fresh], {
        "source": str(folder), "distinct": len(queries), "common": len(common), "cache_miss_set": len(fresh),
        "encoder": params.encoder, "each_below_similarity": params.threshold}


# per inbound protocol: its path, a request body for a prompt, and the name of the last event of its streams
DOORS = {
    "chat": ("/v1/chat/completions", lambda model, p, stream: {
        "model": model, "stream": stream, "messages": [{"role": "user", "content": p}]}, True),
    "responses": ("/v1/responses", lambda model, p, stream: {
        "model": model, "stream": stream, "input": p}, "response.completed"),
    "messages": ("/v1/messages", lambda model, p, stream: {
        "model": model, "stream": stream, "max_tokens": 256, "messages": [{"role": "user", "content": p}]},
        "message_stop"),
}


def bodies(prompts: list[str], model: str, stream: bool, door: str = "chat") -> list[dict]:
    make = DOORS[door][1]
    return [make(model, p, stream) for p in prompts]


def stream_mark(system: "System", stream: bool) -> bool | str:
    return DOORS[system.door][2] if stream else False


class Fleet:
    """The processes of one run: started, remembered, stopped."""

    def __init__(self, tmp: Path, console: Console) -> None:
        self.tmp, self.console, self.procs, self.systems = tmp, console, [], []

    def turnout(self, name: str, config: str, upstream: str, workers: int = 1, door: str = "chat", **kw) -> None:
        text = (HERE / "configs" / config).read_text().replace("${UPSTREAM}", upstream)
        path = self.tmp / f"{name.replace(' ', '-').replace('/', '_')}.yaml"
        path.write_text(text)
        port = free_port()
        proc = start([sys.executable, "-m", "turnout.cli", "serve", "--config", str(path), "--port", str(port),
                      "--workers", str(workers), "--log-level", "warning", "--no-watch"],
                     f"http://127.0.0.1:{port}/readyz", self.tmp / f"{path.stem}.log", timeout=180)
        self.procs.append(proc)
        self.systems.append(System(name, f"turnout serve --workers {workers}, configs/{config}, {DOORS[door][0]}",
                                   f"http://127.0.0.1:{port}{DOORS[door][0]}", "auto", [proc.pid], door=door, **kw))

    def peer(self, name: str, how: str, starter, *args) -> None:
        port = free_port()
        try:
            proc, model, headers = starter(*args[:2], port, *args[2:], self.tmp, self.console.print)
        except RuntimeError as exc:
            self.console.print(f"[yellow]{name} left out: {str(exc)[-400:]}[/yellow]")
            return
        self.procs.append(proc)
        self.systems.append(System(name, how, f"http://127.0.0.1:{port}/v1/chat/completions", model, [proc.pid],
                                   headers))

    def stop(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


def start_all(args, fleet: Fleet, upstream: str, mock_pid: int) -> None:
    wanted = set(args.only.split(",")) if args.only else None

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    fleet.systems.append(System("direct", "the mock upstream alone", f"{upstream}/v1/chat/completions",
                                "mock-small", [mock_pid]))
    if want("floor"):
        port = free_port()
        proc = start([sys.executable, str(HERE / "floor.py"), "--upstream", upstream, "--port", str(port)],
                     f"http://127.0.0.1:{port}/healthz", fleet.tmp / "floor.log")
        fleet.procs.append(proc)
        fleet.systems.append(System("floor", "benchmarks/floor.py (aiohttp pass-through, the Python floor)",
                                    f"http://127.0.0.1:{port}/v1/chat/completions", "mock-small", [proc.pid]))
    if want("heuristic"):
        fleet.turnout("turnout heuristic", "heuristic.yaml", upstream)
        fleet.turnout(f"turnout heuristic ×{args.workers}", "heuristic.yaml", upstream, workers=args.workers)
    for door in ("responses", "messages"):  # the same policy through another door: what translation costs
        if want(door):
            fleet.turnout(f"turnout heuristic {DOORS[door][0]}", "heuristic.yaml", upstream, door=door)
    if want("cascade"):
        fleet.turnout("turnout cascade", "cascade.yaml", upstream, mark_header="x-turnout-plan-attempts")
    if want("neural"):
        fleet.turnout("turnout neural+PII", "neural.yaml", upstream)
    if want("cache-miss"):
        fleet.turnout("turnout cache miss", "cache.yaml", upstream, fresh_prompts=True, mark_header=CACHE_HEADER)
    if want("cache-hit"):
        fleet.turnout("turnout cache hit", "cache.yaml", upstream, mark_header=CACHE_HEADER)
    if args.no_peers:
        return
    if want("litellm"):
        fleet.peer(f"LiteLLM ×{args.workers}", f"litellm --num_workers {args.workers} (proxy, no database)",
                   start_litellm, args.venvs, upstream, args.workers)
    if want("routellm"):
        fleet.peer("RouteLLM", "routellm.openai_server, random router, one process", start_routellm,
                   args.venvs, upstream)
    if want("portkey"):
        fleet.peer("Portkey", "@portkey-ai/gateway on Node, one process", start_portkey, args.venvs, upstream)


def forget_cache(chat_url: str) -> None:
    """Empty the server's semantic cache (the admin endpoint; these configs have no auth section) once the
    warm-up's last requests are done: wrk stops with requests in flight, which the server still answers and
    stores, and those would be hits in the counted run."""
    time.sleep(1.0)
    httpx.delete(chat_url.replace("/chat/completions", "/cache"), params={"all": "true"}, timeout=30).raise_for_status()


def measure(args, systems: list[System], prompts: list[str], fresh: list[str], console: Console) -> dict:
    """{stream: {concurrency: {system: Result}}}, every cell merged over its rounds."""
    per_round = max(1, args.requests // args.rounds)
    generator = args.loadgen or default_generator()
    out: dict = {}
    for stream in ([False] if args.no_stream else [False, True]):
        for system in systems:  # the cache-hit scenario: every prompt once, so that all later ones hit
            if system.mark_header and not system.fresh_prompts:
                drive(system.url, bodies(prompts, system.model, stream, system.door), requests=len(prompts),
                      concurrency=16, stream=stream_mark(system, stream), headers=system.headers, warmup=0, generator=generator,
                      max_seconds=args.max_seconds)
        for c in args.concurrency:
            parts: dict[str, list[Result]] = {s.name: [] for s in systems}
            for r in range(args.rounds):
                order = systems[r % len(systems):] + systems[:r % len(systems)]
                for system in order:
                    # the first round warms the server's code paths; later ones only open the connections
                    warmup = max(20, 2 * c) if r == 0 else c
                    texts, forget = prompts, None
                    if system.fresh_prompts:
                        # wrk runs up to `c` requests ahead of the counted ones: all must be distinct
                        if len(fresh) < per_round + c:
                            raise SystemExit(f"the cache-miss scenario has {len(fresh)} prompts and a drive needs "
                                             f"{per_round + c}: lower --requests or raise --rounds")
                        texts, forget = fresh, partial(forget_cache, system.url)
                    result = drive(system.url, bodies(texts, system.model, stream, system.door),
                                   requests=per_round, concurrency=c, stream=stream_mark(system, stream), headers=system.headers, pids=system.pids,
                                   generator=generator, mark_header=system.mark_header, warmup=warmup,
                                   max_seconds=args.max_seconds, before_counting=forget)
                    parts[system.name].append(result)
            cell = {name: merge(p) for name, p in parts.items()}
            out.setdefault(stream, {})[c] = cell
            for name, res in cell.items():
                console.print(f"{'stream' if stream else 'plain'} c{c:<3} {name:24} {res.rps:8.1f} req/s  "
                              f"p50 {res.p50_ms:8.2f} ms  p99 {res.p99_ms:8.2f} ms  CPU {res.server_cpu_ms:6.2f} ms/req"
                              f"  loadgen {res.loadgen_cpu_ms:.3f} ms/req  errors {res.errors}"
                              + (f"  {res.marks}" if res.marks else ""))
    return out


def report(args, systems: list[System], results: dict, rss: dict[str, float], generator: str) -> dict:
    out: dict = {"loadgen": generator, "requests_per_cell": args.requests, "rounds": args.rounds,
                 "cores": os.cpu_count(), "systems": {s.name: s.how for s in systems}, "rss_mb": rss, "cells": {}}
    for stream, by_c in results.items():
        kind = "stream" if stream else "plain"
        for c, cell in by_c.items():
            direct = cell["direct"]
            for name, res in cell.items():
                row = res.as_dict()
                row["cpu_ms_per_request"] = round(res.server_cpu_ms, 3)
                row["added_p50_ms"] = round(res.p50_ms - direct.p50_ms, 3)
                row["added_p99_ms"] = round(res.p99_ms - direct.p99_ms, 3)
                out["cells"].setdefault(kind, {}).setdefault(name, {})[f"c{c}"] = row
    return out


def _triple(rows: dict, key: str, fmt: str) -> str:
    return " / ".join(format(rows[c][key], fmt) if c in rows else "–" for c in sorted(rows, key=lambda k: int(k[1:])))


def print_tables(out: dict, console: Console) -> None:
    for kind, by_system in out["cells"].items():
        cs = " / ".join(sorted(next(iter(by_system.values())), key=lambda k: int(k[1:])))
        floor = by_system.get("floor")
        floor_cpu = statistics.median(r["cpu_ms_per_request"] for r in floor.values()) if floor else None
        table = Table(title=f"{kind}: {out['requests_per_cell']} requests per cell in {out['rounds']} alternating "
                            f"rounds; load generator {out['loadgen']}; concurrency {cs}")
        for col in ("system", "req/s", "added p50 ms", "added p99 ms", "CPU ms/req", "CPU ÷ floor",
                    "loadgen CPU ms/req", "errors", "RSS MB", "x-turnout-cache"):
            table.add_column(col, justify="left" if col == "system" else "right")
        for name, rows in by_system.items():
            cpu = statistics.median(r["cpu_ms_per_request"] for r in rows.values())
            marks: dict[str, int] = {}
            for r in rows.values():
                for k, v in r.get("marks", {}).items():
                    marks[k] = marks.get(k, 0) + v
            direct = name == "direct"
            table.add_row(name, _triple(rows, "rps", ",.0f"), "" if direct else _triple(rows, "added_p50_ms", ".1f"),
                          "" if direct else _triple(rows, "added_p99_ms", ".1f"), _triple(rows, "cpu_ms_per_request", ".2f"),
                          f"{cpu / floor_cpu:.1f}×" if floor_cpu else "", _triple(rows, "loadgen_cpu_ms_per_request", ".3f"),
                          str(sum(r["errors"] for r in rows.values())), f"{out['rss_mb'].get(name, 0):.0f}",
                          " ".join(f"{k} {v}" for k, v in sorted(marks.items())))
        console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=600, help="requests per system and concurrency")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--no-stream", action="store_true", help="plain requests only (about half the time)")
    parser.add_argument("--only", help="comma-separated: floor,heuristic,responses,messages,cascade,neural,cache-miss,cache-hit,litellm,"
                                       "routellm,portkey (direct always runs)")
    parser.add_argument("--loadgen", choices=["wrk", "aiohttp"], help="default: wrk when installed")
    parser.add_argument("--workers", type=int, default=2, help="LiteLLM's workers and turnout's second row")
    parser.add_argument("--venvs", type=Path, default=ROOT / "bench-out" / "peers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--max-seconds", type=float, default=90.0, help="time bound of each drive")
    args = parser.parse_args()
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    console = Console(width=200)
    prompts, fresh, prompt_info = load_prompts(args.shared, 500)
    tmp = Path(tempfile.mkdtemp(prefix="turnout-scenarios-"))
    args.venvs.mkdir(parents=True, exist_ok=True)
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    mock = mock_upstream(up_port, tmp / "upstream.log")
    fleet = Fleet(tmp, console)
    began = time.monotonic()
    try:
        start_all(args, fleet, upstream, mock.pid)
        console.print(f"started {len(fleet.systems)} systems in {time.monotonic() - began:.0f} s; logs in {tmp}")
        results = measure(args, fleet.systems, prompts, fresh, console)
        rss = {s.name: round(rss_mb(*s.pids), 1) for s in fleet.systems}
    finally:
        fleet.stop()
        stop(mock)
    out = report(args, fleet.systems, results, rss, args.loadgen or default_generator())
    out["prompts"] = prompt_info
    out["wall_s"] = round(time.monotonic() - began, 1)
    print_tables(out, console)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    console.print(f"wrote {args.json} ({out['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
