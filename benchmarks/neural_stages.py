"""Where the neural policy's CPU goes, stage by stage, in one process (no server): the jailbreak detector, the
static encoder, the domain and complexity classifiers and the PII redaction (benchmarks/configs/neural.yaml's
steps), each as the request path calls it, on the scenario benchmark's LLMRouter prompts (plain requests of one
user message). Each request is preceded by a sweep over a buffer (--evict MB) so that the caches are as cold as a
server's other work leaves them; the CPU of each stage is the thread's CPU time (time.thread_time_ns).

With --base REV the same measurement runs in alternating child processes for that revision (a temporary git
worktree) and the working tree, so the drift of a shared machine hits both alike: read the ratios.

    python benchmarks/neural_stages.py --json bench-out/neural-stages.json [--base 4f91cc6] [--rounds 3]
        [--evict 2] [--prompts 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("jailbreak", "encoder", "domain", "complexity", "pii")


def measure(prompts: list[str], evict_mb: float, passes: int) -> dict[str, list[int]]:
    """CPU ns of each stage per request, over `passes` passes (the first one, which fills the per-word caches,
    not counted)."""
    import numpy as np

    from turnout.models.classifier import load_classifier
    from turnout.models.encoders import get_encoder
    from turnout.models.injection import load_detector
    from turnout.models.injection_text import request_texts
    from turnout.plugins.pii import ALL_TYPES, Redactor, map_body

    encoder, detector = get_encoder("minilm-static"), load_detector("builtin:jailbreak")
    domain, complexity = load_classifier("builtin:domain"), load_classifier("builtin:complexity")
    roles, types = ["system", "developer", "user", "tool", "function", "assistant"], tuple(ALL_TYPES)
    buffer = np.ones(max(1, int(evict_mb * (1 << 20) / 8)))
    clock = time.thread_time_ns
    out: dict[str, list[int]] = {stage: [] for stage in STAGES}
    for i in range(passes + 1):
        for prompt in prompts:
            body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
            buffer.sum()
            t0 = clock()
            detector.score(request_texts(body, "all"))
            t1 = clock()
            vector = encoder.encode([prompt])[0]
            t2 = clock()
            domain.predict(vector, prompt)
            t3 = clock()
            complexity.predict(vector, prompt)
            t4 = clock()
            map_body(body, roles, Redactor(types).redact)
            t5 = clock()
            if i:
                for stage, a, b in zip(STAGES, (t0, t1, t2, t3, t4), (t1, t2, t3, t4, t5)):
                    out[stage].append(b - a)
    return out


def child(args: argparse.Namespace) -> None:
    prompts = json.loads(Path(args.child).read_text(encoding="utf-8"))
    print(json.dumps(measure(prompts, args.evict, args.passes)))


def run_tree(tree: Path, prompts_file: Path, args: argparse.Namespace) -> dict[str, list[int]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(prompts_file), "--evict", str(args.evict),
           "--passes", str(args.passes), "--json", "-"]
    done = subprocess.run(cmd, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--base", help="a git revision to measure beside the working tree")
    parser.add_argument("--rounds", type=int, default=3, help="alternating child processes per tree")
    parser.add_argument("--passes", type=int, default=2, help="passes over the prompts per child")
    parser.add_argument("--evict", type=float, default=2.0, help="MB swept before each request")
    parser.add_argument("--prompts", type=int, default=500)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    sys.path.insert(0, str(Path(__file__).parent))
    from rich.console import Console
    from rich.table import Table
    from scenarios import load_prompts

    prompts = load_prompts(args.shared, args.prompts)[0]
    tmp = Path(tempfile.mkdtemp(prefix="turnout-stages-"))
    prompts_file = tmp / "prompts.json"
    prompts_file.write_text(json.dumps(prompts), encoding="utf-8")
    trees = {"working tree": ROOT}
    if args.base:
        trees = {args.base: tmp / "base", **trees}
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tmp / "base"), args.base],
                       check=True)
    samples: dict[str, dict[str, list[int]]] = {name: {s: [] for s in STAGES} for name in trees}
    try:
        for i in range(args.rounds):
            order = list(trees.items())
            for name, tree in order[i % 2:] + order[:i % 2]:
                for stage, values in run_tree(tree, prompts_file, args).items():
                    samples[name][stage] += values
    finally:
        if args.base:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "base")], check=False)
    out = {name: {stage: {"median_us": statistics.median(v) / 1e3, "mean_us": statistics.fmean(v) / 1e3}
                  for stage, v in stages.items()} for name, stages in samples.items()}
    for stages in out.values():
        stages["total"] = {k: sum(stages[s][k] for s in STAGES) for k in ("median_us", "mean_us")}
    out["meta"] = {"prompts": len(prompts), "rounds": args.rounds, "passes": args.passes, "evict_mb": args.evict,
                   "base": args.base, "machine": f"shared {os.cpu_count()}-core; read as ratios"}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    table = Table(title="neural policy stages, CPU µs per request (in-process; mean, median)")
    table.add_column("stage")
    for name in trees:
        table.add_column(name)
    for stage in (*STAGES, "total"):
        table.add_row(stage, *(f"{out[n][stage]['mean_us']:.1f} ({out[n][stage]['median_us']:.1f})" for n in trees))
    Console().print(table)


if __name__ == "__main__":
    main()
