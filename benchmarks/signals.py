"""Signal and decision-engine cost on this CPU, at prompt sizes of 100, 2,000 and 8,000 tokens.

    python benchmarks/signals.py --json bench-out/signals.json [--shared ../shared/data] [--repeat 300]

Prompts are real LLMRouter questions joined to the wanted size. Targets (issue 4): all heuristic signals
together < 1,000 µs at 2,000 tokens; embedding ≤ 8 ms p50 at 200 tokens; decision engine (100 decisions × 5
conditions) < 50 µs; RSS with every neural signal loaded ≤ 600 MB."""

from __future__ import annotations

import asyncio
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _load import bench_args, percentiles  # noqa: E402
from rich.console import Console
from rich.table import Table

from turnout.config import parse_config
from turnout.context import RoutingContext, SignalResult
from turnout.decisions import DecisionEngine
from turnout.signals import signals

HEURISTIC = {
    "keyword": {"words": ["def ", "class ", "stack trace", "compile", "segfault", "refactor", "unit test", "regex",
                          "percent", "integral", "derivative", "probability", "translate", "summarize", "poem"]},
    "regex": {"patterns": [r"JIRA-\d+", r"(?:SELECT|INSERT|UPDATE) [^;]{0,200}FROM", r"https?://\S+"]},
    "language": {"languages": ["en"]},
    "context_length": {"min_tokens": 4000},
    "conversation": {"min_turns": 2, "has_tools": False},
    "structure": {"kinds": ["code", "json", "math", "table"]},
    "role": {"roles": ["admin"]},
    "header": {"name": "x-tenant", "values": ["acme"]},
    "metadata": {"key": "tier", "values": ["gold"]},
    "user_flags": {"objectives": ["cost"]},
    "pii": {},
    "fact_check": {},
    "modality": {"outputs": ["image", "audio", "video"], "inputs": ["image", "audio", "file"]},
}
BASELINES = Path(__file__).resolve().parents[1] / "turnout/eval/data/baseline"  # the embedding-only models replaced
NEURAL = {  # name: (kind, params)
    "embedding": ("embedding", {"examples": ["solve for x", "integral of a function", "probability that",
                                             "prove the theorem"]}),
    "domain": ("domain", {"domains": ["math"]}),
    "domain (baseline)": ("domain", {"domains": ["math"], "artifact": str(BASELINES / "domain.npz")}),
    "complexity": ("complexity", {}),
    "complexity (baseline)": ("complexity", {"artifact": str(BASELINES / "complexity.npz")}),
    "jailbreak": ("jailbreak", {}),
}


def prompt_of(tokens: int, pool: list[str]) -> str:
    text, i = "", 0
    while len(text) < tokens * 4:
        text += pool[i % len(pool)] + "\n"
        i += 1
    return text[: tokens * 4]


def time_signal(signal, text: str, repeat: int) -> list[float]:
    body = {"messages": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": text}]}

    async def measure() -> list[float]:  # inside one coroutine, as in the server: no event-loop start per call
        out = []
        for _ in range(repeat):
            ctx = RoutingContext(body, headers={"x-tenant": "acme"})  # a fresh request: nothing cached
            start = time.perf_counter()
            await signal.evaluate(ctx)
            out.append((time.perf_counter() - start) * 1e6)
        return out

    return LOOP.run_until_complete(measure())


def decision_engine_us(repeat: int) -> float:
    names = [f"s{i}" for i in range(40)]
    decisions = []
    for d in range(100):
        leaves = [{"signal": names[(d * 5 + k) % 40]} for k in range(5)]
        decisions.append({"name": f"d{d}", "priority": d % 7,
                          "when": {"all": leaves[:2] + [{"any": leaves[2:4]}, {"not": leaves[4]}]}, "models": ["m"]})
    decisions.append({"name": "default", "models": ["m"]})
    config = parse_config({"models": {"m": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                           "signals": {n: {"kind": "keyword", "words": [n]} for n in names}, "decisions": decisions})
    engine = DecisionEngine(config.decisions)
    results = {n: SignalResult(i % 3 == 0, 0.5) for i, n in enumerate(names)}
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        engine.decide(results)
        samples.append((time.perf_counter() - start) * 1e6)
    return round(statistics.median(samples), 1)


LOOP = asyncio.new_event_loop()


def main() -> None:
    args = bench_args(__doc__, 300)
    pool = [json.loads(line)["query"] for line in
            (args.shared / "llmrouter/query_data/default_query_test.jsonl").open(encoding="utf-8")]
    heuristic = {kind: signals.get(kind).from_config(kind, params, kind) for kind, params in HEURISTIC.items()}
    report: dict = {"sizes": {}}
    for tokens in (100, 2000, 8000):
        text = prompt_of(tokens, pool)
        per_signal = {kind: time_signal(s, text, args.repeat) for kind, s in heuristic.items()}
        totals = [sum(v[i] for v in per_signal.values()) for i in range(args.repeat)]
        report["sizes"][str(tokens)] = {"heuristic_total_us_p50": round(statistics.median(totals), 1),
                                        "signals": {k: percentiles(v) for k, v in per_signal.items()}}
    report["heuristic_total_us_p50"] = report["sizes"]["2000"]["heuristic_total_us_p50"]
    report["signals"] = report["sizes"]["2000"]["signals"]
    neural = {name: signals.get(kind).from_config(kind, params, kind) for name, (kind, params) in NEURAL.items()}
    text200 = prompt_of(200, pool)
    for kind, s in neural.items():
        report["signals"][kind] = percentiles(time_signal(s, text200, args.repeat))
    from turnout.models.encoders import get_encoder

    encoder_ms = {}
    for name in ("minilm-static", "minilm-onnx"):
        encoder = get_encoder(name)
        samples = []
        for _ in range(max(20, args.repeat // (10 if name == "minilm-onnx" else 1))):
            start = time.perf_counter()
            encoder.encode([text200])
            samples.append((time.perf_counter() - start) * 1000)
        encoder_ms[name] = round(statistics.median(samples), 2)
    report["embedding_ms_p50"] = encoder_ms["minilm-static"]
    report["embedding_ms_p50_by_encoder_200_tokens"] = encoder_ms
    report["decision_engine_us_p50_100x5"] = decision_engine_us(args.repeat * 3)
    report["rss_mb_all_loaded"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["targets"] = {"heuristic_total_us_p50_2000_tokens": 1000, "embedding_ms_p50_200_tokens": 8,
                         "decision_engine_us_p50": 50, "rss_mb": 600}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))

    table = Table(title="signal cost (µs p50 / p99)", title_justify="left")
    table.add_column("signal")
    for tokens in ("100", "2000", "8000"):
        table.add_column(f"{tokens} tok", justify="right")
    for kind in HEURISTIC:
        table.add_row(kind, *(f"{report['sizes'][t]['signals'][kind]['p50_us']:.0f} / "
                              f"{report['sizes'][t]['signals'][kind]['p99_us']:.0f}" for t in ("100", "2000", "8000")))
    table.add_row("[bold]heuristic total p50[/bold]",
                  *(f"{report['sizes'][t]['heuristic_total_us_p50']:.0f}" for t in ("100", "2000", "8000")))
    for kind in NEURAL:
        table.add_row(f"{kind} (200 tok)", f"{report['signals'][kind]['p50_us']:.0f} / {report['signals'][kind]['p99_us']:.0f}",
                      "", "")
    console = Console(width=120)
    console.print(table)
    console.print(f"embedding p50 at 200 tokens: {encoder_ms}  ms; decision engine 100×5: "
                  f"{report['decision_engine_us_p50_100x5']} µs; RSS with all loaded: {report['rss_mb_all_loaded']} MB")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
