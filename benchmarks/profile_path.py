"""Where a routed request's CPU goes: one `turnout serve` (1 worker) in front of the loopback mock upstream,
driven at concurrency 1 (or --concurrency N) while py-spy samples it, then the functions with the largest share of the samples
(inclusive: the function or anything it called; self: the function's own lines). Needs py-spy
(`pip install py-spy`); on Linux it may need ptrace rights (root, or kernel.yama.ptrace_scope=0).

    python benchmarks/profile_path.py --out bench-out/profile [--config benchmarks/configs/heuristic.yaml]
        [--requests 20000] [--no-stream] [--top 40] [--rate 500] [--concurrency 16] [--floor]

Writes, per scenario (plain, stream), the collapsed stacks (`<scenario>.txt`, flamegraph.pl input) and a JSON of
the top frames; prints the tables. The shares are of samples taken while the process was busy (idle excluded).
py-spy stops the process for each sample (its default; --nonblocking misattributed frames here), so the CPU per
request printed beside a profile is above an unsampled run's: read the shares, and measure speed with
benchmarks/compare_revisions.py or benchmarks/scenarios.py. A frame that writes to a socket (uvicorn's response
write, aiohttp's StreamWriter._writelines) holds the kernel's send path, on loopback the receiver's TCP work
too; `Runner.run` as the last frame is the event loop's own C code (epoll, reads, callbacks). With --floor the
Python floor (benchmarks/floor.py) is sampled instead of turnout, under the same sampler and load: what the two
share (the aiohttp client, the socket writes) reads against what only turnout does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import drive, mock_upstream, start, stop
from overhead import PROMPT

from turnout.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


def frame_name(frame: str) -> str:
    """`handle (uvicorn/protocols/http/httptools_impl.py:123)` -> `handle (uvicorn/.../httptools_impl.py)`."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/lib/python3", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def shares(collapsed: str, top: int) -> dict[str, list[tuple[str, float]]]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    if not total:
        return {"inclusive": [], "self": []}
    return {kind: [(name, 100 * n / total) for name, n in counter.most_common(top)]
            for kind, counter in (("inclusive", inclusive), ("self", own))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="a folder for the stacks and the JSON")
    parser.add_argument("--config", type=Path, default=ROOT / "benchmarks" / "configs" / "heuristic.yaml")
    parser.add_argument("--requests", type=int, default=20000, help="requests per scenario, all sampled")
    parser.add_argument("--no-stream", action="store_true")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=500, help="py-spy samples per second")
    parser.add_argument("--concurrency", type=int, default=1, help="connections driving the server at once")
    parser.add_argument("--floor", action="store_true", help="sample benchmarks/floor.py instead of turnout")
    parser.add_argument("--tree", type=Path, default=ROOT, help="serve the turnout of this checkout (a worktree "
                                                                 "of an older commit, say); default: this one")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="turnout-profile-"))
    up_port, port = free_port(), free_port()
    config = tmp / "profile.yaml"
    config.write_text(yaml.safe_dump(yaml.safe_load(
        args.config.read_text().replace("${UPSTREAM}", f"http://127.0.0.1:{up_port}"))))
    procs = [mock_upstream(up_port, tmp / "upstream.log")]
    report: dict[str, dict] = {}
    try:
        if args.floor:
            server = start([sys.executable, str(ROOT / "benchmarks" / "floor.py"), "--upstream",
                            f"http://127.0.0.1:{up_port}", "--port", str(port)], f"http://127.0.0.1:{port}/healthz",
                           tmp / "floor.log")
        else:
            server = start(["env", f"PYTHONPATH={args.tree}", sys.executable, "-m", "turnout.cli", "serve", "--config",
                            str(config), "--port", str(port), "--workers", "1", "--log-level", "warning", "--no-watch"],
                           f"http://127.0.0.1:{port}/readyz", tmp / "turnout.log", cwd=args.tree)
        procs.append(server)
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        for stream in (False,) if args.no_stream else (False, True):
            scenario = "stream" if stream else "plain"
            body = {"model": "auto", "messages": [{"role": "user", "content": PROMPT}], "stream": stream}
            drive(url, body, requests=500, concurrency=args.concurrency, stream=stream)  # warm: imports, caches, connections
            stacks = args.out / f"{scenario}.txt"
            spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(server.pid), "--format", "raw", "--rate",
                                    str(args.rate), "--output", str(stacks)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            try:
                result = drive(url, body, requests=args.requests, concurrency=args.concurrency, stream=stream, pids=[server.pid],
                               warmup=0, max_seconds=600)
            finally:
                spy.send_signal(2)  # SIGINT: py-spy writes what it sampled and exits
                _, err = spy.communicate(timeout=60)
            if not stacks.exists():
                raise RuntimeError(f"py-spy wrote nothing: {err.decode()[-2000:]}")
            report[scenario] = {"concurrency": args.concurrency, "cpu_ms_per_request": result.as_dict()["cpu_ms_per_request"],
                                **shares(stacks.read_text(), args.top)}
    finally:
        for proc in reversed(procs):
            stop(proc)
    (args.out / "profile.json").write_text(json.dumps(report, indent=2))
    console = Console(width=220)
    for scenario, r in report.items():
        table = Table(title=f"{scenario}, concurrency {args.concurrency}: {r['cpu_ms_per_request']:.3f} CPU "
                            f"ms/request while sampled")
        for col in ("% inclusive", "frame", "% self", "frame "):
            table.add_column(col)
        for (name_i, inc), (name_s, own) in zip(r["inclusive"], r["self"]):
            table.add_row(f"{inc:.1f}", name_i, f"{own:.1f}", name_s)
        console.print(table)


if __name__ == "__main__":
    main()
