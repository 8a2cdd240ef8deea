"""The injection detector (`builtin:jailbreak`) beside the embedding classifier it replaced and the detector it was
retrained from (`detector (previous)`): latency on this CPU for 100-, 500- and 2,000-token prompts, and quality on
every split not trained on (turnout.eval.injection_report: llm-warden test, dev, final, final5, final6, final7)
and the false alarms on `everyday_shared` (1,527 benign LLMRouter / GSM8K test prompts never trained on; Wilson
interval).

    python benchmarks/injection.py --json bench-out/injection.json [--shared ../shared/data] [--repeat 200]

Prompts are llm-warden test-split benign prompts joined to the wanted size (about 4 characters a token), sent as
one user message; each call scores the whole request as the guard does (every message; windows for a long one).
Both detectors are timed interleaved in one run, so the ratio holds on a noisy machine; besides wall-clock
p50/p95 the table shows the p50 of the calling thread's CPU time, which other processes on a shared machine do
not inflate. Target (issue 17):
≤ 10 ms p50 at 500 tokens; F1 ≥ 0.90 on unseen multilingual data with ≤ 2 % false alarms on everyday prompts."""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _load import bench_args, percentile
from rich.console import Console
from rich.table import Table

from turnout.eval.injection_data import warden_split
from turnout.eval.injection_report import DETECTORS, evaluate_injection
from turnout.models.injection import load_detector
from turnout.models.injection_text import request_texts

SIZES = (100, 500, 2000)


def prompt(shared: Path, tokens: int) -> str:
    benign = [t for t, label in warden_split(shared, "test") if label == "benign"]
    text, i = "", 0
    while len(text) < tokens * 4:
        text += benign[i % len(benign)] + "\n\n"
        i += 1
    return text[: tokens * 4]


def latency(shared: Path, repeat: int) -> dict[str, dict[str, dict[str, float]]]:
    detectors = {name: load_detector(artifact) for name, artifact in DETECTORS.items()}
    out: dict[str, dict[str, dict[str, float]]] = {name: {} for name in detectors}
    for tokens in SIZES:
        body = {"messages": [{"role": "user", "content": prompt(shared, tokens)}]}
        wall: dict[str, list[float]] = {name: [] for name in detectors}
        cpu: dict[str, list[float]] = {name: [] for name in detectors}
        for name, detector in detectors.items():  # warm-up: encoder caches, first-call allocations
            detector.score(request_texts(body))
        for _ in range(repeat):
            for name, detector in detectors.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                detector.score(request_texts(body))
                cpu[name].append((time.thread_time() - start_cpu) * 1000)
                wall[name].append((time.perf_counter() - start) * 1000)
        for name in detectors:
            out[name][str(tokens)] = {"p50_ms": round(statistics.median(wall[name]), 3),
                                      "p95_ms": round(percentile(wall[name], 95), 3),
                                      "cpu_p50_ms": round(statistics.median(cpu[name]), 3)}
    return out


def main() -> None:
    args = bench_args(__doc__, repeat=200)
    timing = latency(args.shared, args.repeat)
    quality = evaluate_injection(args.shared)
    console = Console()
    table = Table(title="injection detector: latency per request (ms)")
    table.add_column("detector")
    for tokens in SIZES:
        table.add_column(f"{tokens} tok p50", justify="right")
        table.add_column("p95", justify="right")
        table.add_column("CPU p50", justify="right")
    for name, sizes in timing.items():
        table.add_row(name, *[f"{sizes[str(t)][k]:.2f}" for t in SIZES for k in ("p50_ms", "p95_ms", "cpu_p50_ms")])
    console.print(table)
    q = Table(title="injection detector: quality (95 % bootstrap intervals)")
    for column in ("split", "detector", "threshold", "F1", "precision", "recall", "AUC", "false alarms everyday (+ system)",
                   "false alarms look-alike"):
        q.add_column(column)
    for split, by_detector in quality["splits"].items():
        for name, report in by_detector.items():
            for key, m in report.items():
                if not key.startswith("at_"):
                    continue
                ci = m["ci95"]
                every, look = m["false_alarms_everyday"], m["false_alarms_lookalike"]
                scored = m["positives"] > 0  # everyday_shared holds benign prompts only: false alarms, no F1
                q.add_row(split, name, f"{m['threshold']:g}",
                          f"{m['f1']:.3f} [{ci['f1'][0]:.2f}, {ci['f1'][1]:.2f}]" if scored else "-",
                          f"{m['precision']:.3f}" if scored else "-", f"{m['recall']:.3f}" if scored else "-",
                          f"{m['auc']:.3f}" if scored else "-",
                          "-" if every["rate"] is None else f"{every['flagged']}/{every['of']}"
                          + (f" [{every['ci95'][0]:.2%}, {every['ci95'][1]:.2%}]" if every["of"] >= 100 else ""),
                          "-" if look["rate"] is None else f"{look['flagged']}/{look['of']}")
    console.print(q)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"latency": timing, "quality": quality, "repeat": args.repeat}, indent=1))
    console.print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
