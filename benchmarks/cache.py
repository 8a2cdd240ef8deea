"""Semantic cache figures: lookup latency at 10k and 100k entries (memory and Redis stores) and hit rate /
precision on labelled prompt pairs: the new set (tests/data/cache_pairs/, both classes varying their framing; its
`final` split only with --final, measured once) and the older tests/data/paraphrases.jsonl.

    python benchmarks/cache.py --json bench-out/cache.json [--sizes 10000,100000] [--queries 1000] [--final]

Latency excludes the embedding (vectors are precomputed: unit vectors clustered around 1,000 topics, 384-d
like MiniLM, all in ONE bucket — the worst case, one tenant and one decision holding every entry); a semantic
lookup is what the plugin does after embedding: ANN search in the bucket, fetch the candidates (MGET for Redis),
judge them. Exact lookups are one dict / GET. Redis runs as a real redis-server on 127.0.0.1 started by this
script. The CPU of a miss, embedding included, is benchmarks/cache_speed.py.

Hit rate and precision go through the plugin's own before/after hooks with the real encoder: for each pair, the
first prompt's answer is cached, then the second prompt is looked up. Hit rate = same-meaning pairs that hit;
precision = hits that were same-meaning pairs; bootstrap 95 % intervals over the pairs. Reported for the old
default (minilm-onnx, 0.85, the `frame` judge) and the new one (minilm-static, 0.80, `strict`).
Targets (issues 6, 12): exact < 1 ms, semantic ≤ 2 ms at 100k; hit rate ≥ 80 % at precision ≥ 98 %."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _load import percentiles  # noqa: E402

from turnout.context import RoutingContext
from turnout.models.encoders import get_encoder
from turnout.plugins.same_question import judge
from turnout.plugins.semantic_cache import SemanticCacheParams, SemanticCachePlugin
from turnout.state.cache import CacheEntry, MemoryCacheStore, RedisCacheStore
from turnout.testing import free_port

DIM = 384
PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "paraphrases.jsonl"
NEW_PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "cache_pairs"


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit vectors around 1,000 topic centres, as prompt embeddings cluster by topic (an isotropic cloud
    would be the worst case for HNSW and unlike any real embedding set)."""
    centres = rng.normal(size=(1000, DIM)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


async def fill(store, vectors: np.ndarray, bucket: str) -> float:
    start = time.perf_counter()
    response = {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "an answer of a typical length " * 8}, "finish_reason": "stop"}]}
    now = time.time()
    for i, v in enumerate(vectors):
        await store.put(CacheEntry(f"k{i}", bucket, f"prompt number {i}", response, now, now + 3600), v)
    if isinstance(store, RedisCacheStore):
        await store.nearest(bucket, vectors[0], 1)  # mirror everything before timing lookups
    return time.perf_counter() - start


async def time_lookups(store, vectors: np.ndarray, bucket: str, queries: int, rng) -> dict:
    exact, semantic, found = [], [], 0
    picks = rng.integers(0, len(vectors), queries)
    for i in picks:
        t = time.perf_counter()
        await store.get(f"k{i}")
        exact.append((time.perf_counter() - t) * 1e6)
        q = vectors[i] + rng.normal(scale=0.02, size=DIM).astype(np.float32)  # a close paraphrase
        t = time.perf_counter()
        params = SemanticCacheParams()
        near = [(k, s) for k, s in await store.nearest(bucket, q, params.candidates) if s >= params.threshold]
        entries = await store.get_many([k for k, _ in near])
        hit = next((e for e in entries if e is not None and judge("strict", e.prompt, f"prompt number {i}")), None)
        semantic.append((time.perf_counter() - t) * 1e6)
        found += hit is not None and hit.key == f"k{i}"
    return {"exact_us": percentiles(exact), "semantic_us": percentiles(semantic), "semantic_recall": found / queries}


async def latency(sizes: list[int], queries: int, redis_url: str | None) -> dict:
    rng = np.random.default_rng(0)
    out: dict = {}
    for n in sizes:
        vectors = unit_rows(rng, n)
        kinds = [("memory", lambda: MemoryCacheStore(n + 1))]
        if redis_url:
            kinds.append(("redis", lambda: RedisCacheStore(redis_url, f"bench:{n}:{time.monotonic_ns()}", n + 1)))
        for kind, make in kinds:
            store = make()
            seconds = await fill(store, vectors, "bucket")
            out[f"{kind}@{n}"] = {"store": kind, "entries": n, "fill_s": round(seconds, 1),
                                  **await time_lookups(store, vectors, "bucket", queries, rng)}
            await store.aclose()
    return out


CONFIGS = {  # the old default beside the new one; each through the plugin's own hooks
    "old: minilm-onnx 0.85, frame": {"encoder": "minilm-onnx", "threshold": 0.85, "judge": "frame"},
    "new: minilm-static 0.80, strict": {"encoder": "minilm-static", "threshold": 0.80, "judge": "strict"},
    "minilm-onnx 0.80, strict": {"encoder": "minilm-onnx", "threshold": 0.80, "judge": "strict"},
}


def pair_sets(final: bool) -> dict[str, list[dict]]:
    """The old set's four splits and the new set's tune split; its final split only when asked (measured once)."""
    old = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    sets = {f"old/{s}": [r for r in old if r["split"] == s] for s in ("dev", "check", "check2", "test")}
    for split in ("tune", "final") if final else ("tune",):
        path = NEW_PAIRS / f"{split}.jsonl"
        sets[f"new/{split}"] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return sets


async def plugin_hits(rows: list[dict], **params) -> list[float | None]:
    """For each pair: cache the first prompt's answer, look the second up; the similarity of a hit, else None.
    Each pair has its own bucket (tenant header), so only the judgement is measured, not the search."""
    plugin = SemanticCachePlugin(SemanticCacheParams(tenant_header="x-pair", namespace=f"bench-{time.monotonic_ns()}",
                                                     **params))
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}]}
    out: list[float | None] = []
    for i, row in enumerate(rows):
        first, second = (RoutingContext({"messages": [{"role": "user", "content": t}]}, headers={"x-pair": str(i)})
                         for t in (row["a"], row["b"]))
        for ctx in (first, second):
            ctx.decision, ctx.model = "default", "m"
        await plugin.before(first)
        await plugin.after(first, answer)
        hit = await plugin.before(second)
        out.append(hit["turnout_cache"]["similarity"] if hit else None)
    return out


def bootstrap(outcomes: list[tuple[bool, bool]], rounds: int = 2000, seed: int = 0) -> dict:
    """95 % intervals of hit rate and precision, resampling the pairs."""
    rng = np.random.default_rng(seed)
    hit = np.array([h for h, _ in outcomes]); same = np.array([s for _, s in outcomes])
    rates, precisions = [], []
    for _ in range(rounds):
        i = rng.integers(0, len(outcomes), len(outcomes))
        tp, hits, positives = (hit[i] & same[i]).sum(), hit[i].sum(), same[i].sum()
        rates.append(tp / max(positives, 1))
        if hits:
            precisions.append(tp / hits)
    return {"hit_rate_95": [round(float(np.percentile(rates, q)), 3) for q in (2.5, 97.5)],
            "precision_95": [round(float(np.percentile(precisions, q)), 3) for q in (2.5, 97.5)]}


async def one_bucket(rows: list[dict], **params) -> dict:
    """Every pair's first prompt cached in ONE bucket, then every second prompt looked up: the search must find
    the right entry among all of them (the static encoder's neighbours are not MiniLM's). A hit is right when
    some pair labels the two prompts the same question, wrong when some pair labels them different; other hits
    (two prompts no pair relates) are counted apart, as `unlabelled`."""
    plugin = SemanticCachePlugin(SemanticCacheParams(namespace=f"bench-{time.monotonic_ns()}", **params))

    def context(text: str) -> RoutingContext:
        ctx = RoutingContext({"messages": [{"role": "user", "content": text}]})
        ctx.decision, ctx.model = "default", "m"
        return ctx

    label = {frozenset((r["a"], r["b"])): r["same"] for r in rows}
    firsts = {r["a"] for r in rows}
    for text in sorted(firsts):
        ctx = context(text)
        await plugin.before(ctx)
        await plugin.after(ctx, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                              "finish_reason": "stop"}]})
    right = wrong = unlabelled = positives = 0
    for r in rows:
        if r["b"] in firsts:
            continue  # cached itself: an exact hit, not a semantic one
        positives += r["same"]
        hit = await plugin.before(context(r["b"]))
        if hit is not None:
            same = label.get(frozenset((r["b"], hit["choices"][0]["message"]["content"])))
            right += same is True
            wrong += same is False
            unlabelled += same is None
    return {"entries": len(firsts), "lookups": sum(r["b"] not in firsts for r in rows),
            "hit_rate": round(right / max(positives, 1), 3), "precision": round(right / max(right + wrong, 1), 3),
            "wrong_hits": wrong, "unlabelled_hits": unlabelled}


def neighbours(rows: list[dict], k: int) -> dict:
    """Does the static encoder find MiniLM's nearest cached prompt? Every first prompt is an entry; for every
    second prompt, MiniLM's (minilm-onnx) nearest entry is looked for in the static encoder's top 1 and top k."""
    firsts = sorted({r["a"] for r in rows})
    queries = [r["b"] for r in rows if r["b"] not in firsts]
    found = {}
    for name in ("minilm-onnx", "minilm-static"):
        encoder = get_encoder(name)
        found[name] = (encoder.encode(queries) @ encoder.encode(firsts).T).argsort(axis=1)[:, ::-1]
    best = found["minilm-onnx"][:, 0]
    return {"entries": len(firsts), "queries": len(queries), "k": k,
            "top1_agreement": round(float((found["minilm-static"][:, 0] == best).mean()), 3),
            f"recall_at_{k}": round(float((found["minilm-static"][:, :k] == best[:, None]).any(axis=1).mean()), 3)}


async def paraphrases(final: bool) -> dict:
    """Hit rate and precision (with bootstrap 95 % intervals) of each config on each pair set."""
    out: dict = {}
    for set_name, rows in pair_sets(final).items():
        out[set_name] = {"same_meaning": sum(r["same"] for r in rows),
                         "different_meaning": sum(not r["same"] for r in rows)}
        for config, params in CONFIGS.items():
            outcomes = [(s is not None, r["same"]) for s, r in zip(await plugin_hits(rows, **params), rows)]
            out[set_name][config] = {**_rates(outcomes), **bootstrap(outcomes)}
    every = [r for rows in pair_sets(final).values() for r in rows]
    out["one bucket"] = {config: await one_bucket(every, **params) for config, params in CONFIGS.items()}
    out["neighbours"] = neighbours(every, SemanticCacheParams().candidates)
    return out


def _rates(outcomes: list[tuple[bool, bool]]) -> dict:
    """(hit, same meaning) per pair → hit rate, precision, false hits."""
    tp = sum(hit and same for hit, same in outcomes)
    fp = sum(hit and not same for hit, same in outcomes)
    return {"hit_rate": round(tp / max(sum(same for _, same in outcomes), 1), 3),
            "precision": round(tp / max(tp + fp, 1), 3), "false_hits": fp}


def start_redis() -> tuple[subprocess.Popen | None, str | None]:
    if shutil.which("redis-server") is None:
        return None, None
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL)
    time.sleep(0.5)
    return proc, f"redis://127.0.0.1:{port}/0"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--no-latency", action="store_true", help="only the paraphrase pairs")
    parser.add_argument("--final", action="store_true", help="also the new set's final split (measured once)")
    args = parser.parse_args()
    console = Console()
    report = {"latency": {}}
    if not args.no_latency:
        proc, url = start_redis()
        try:
            report["latency"] = asyncio.run(latency([int(s) for s in args.sizes.split(",")], args.queries, url))
        finally:
            if proc is not None:
                proc.terminate()
    report["paraphrases"] = asyncio.run(paraphrases(args.final))
    t = Table(title="cache lookups (embedding excluded), µs")
    t.add_column("store @ entries", no_wrap=True)
    for col in ("exact p50", "exact p99", "semantic p50", "semantic p99", "semantic recall", "fill s"):
        t.add_column(col)
    for name, r in report["latency"].items():
        t.add_row(name, f"{r['exact_us']['p50_us']:.0f}", f"{r['exact_us']['p99_us']:.0f}", f"{r['semantic_us']['p50_us']:.0f}",
                  f"{r['semantic_us']['p99_us']:.0f}", f"{r['semantic_recall']:.3f}", f"{r['fill_s']}")
    console.print(t)
    p = Table(title="paraphrase pairs: hit rate / precision (false hits) [95 % intervals]")
    p.add_column("set (same/different)", no_wrap=True)
    for config in CONFIGS:
        p.add_column(config)
    for set_name, result in report["paraphrases"].items():
        if set_name in ("one bucket", "neighbours"):
            continue
        p.add_row(f"{set_name} ({result['same_meaning']}/{result['different_meaning']})",
                  *(f"{r['hit_rate']:.3f} / {r['precision']:.3f} ({r['false_hits']})\n"
                    f"[{r['hit_rate_95'][0]:.2f}-{r['hit_rate_95'][1]:.2f}] / "
                    f"[{r['precision_95'][0]:.2f}-{r['precision_95'][1]:.2f}]"
                    for r in (result[c] for c in CONFIGS)))
    console.print(p)
    b = Table(title="every set's pairs in ONE bucket: hit rate / precision (wrong hits, unlabelled hits)")
    b.add_column("entries / lookups")
    for config in CONFIGS:
        b.add_column(config)
    one = report["paraphrases"]["one bucket"]
    first = next(iter(one.values()))
    b.add_row(f"{first['entries']} / {first['lookups']}",
              *(f"{r['hit_rate']:.3f} / {r['precision']:.3f} ({r['wrong_hits']}, {r['unlabelled_hits']})"
                for r in one.values()))
    console.print(b)
    console.print("static encoder vs MiniLM, nearest cached prompt:", report["paraphrases"]["neighbours"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
