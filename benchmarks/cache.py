"""Semantic cache figures: lookup latency at 10k and 100k entries (memory and Redis stores) and hit rate /
precision on the project's labelled paraphrase pairs (tests/data/paraphrases.jsonl).

    python benchmarks/cache.py --json bench-out/cache.json [--sizes 10000,100000] [--queries 1000]

Latency excludes the embedding (vectors are precomputed: unit vectors clustered around 1,000 topics, 384-d
like MiniLM, all in ONE bucket — the worst case, one tenant and one decision holding every entry); a semantic lookup is what the plugin
does after embedding: ANN search in the bucket, fetch the candidates (MGET for Redis), check their facts.
Exact lookups are one dict / GET. Redis runs as a real redis-server on 127.0.0.1 started by this script.

Hit rate and precision go through the plugin's own before/after hooks with the real encoder: for each pair,
the first prompt's answer is cached, then the second prompt is looked up. Hit rate = same-meaning pairs that hit;
precision = hits that were same-meaning pairs. Reported per split (dev, check, check2, test: what each was
used for is in scripts/paraphrases/), beside the embedding alone (no same_question check).
Targets (issue 6): exact < 1 ms, semantic ≤ 2 ms at 100k;
hit rate ≥ 80 % at precision ≥ 98 % at the default threshold."""

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
from turnout.plugins.same_question import same_question
from turnout.plugins.semantic_cache import SemanticCacheParams, SemanticCachePlugin
from turnout.state.cache import CacheEntry, MemoryCacheStore, RedisCacheStore
from turnout.testing import free_port

DIM = 384
PAIRS = Path(__file__).resolve().parents[1] / "tests" / "data" / "paraphrases.jsonl"


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
        near = [(k, s) for k, s in await store.nearest(bucket, q, 4) if s >= SemanticCacheParams().threshold]
        entries = await store.get_many([k for k, _ in near])
        hit = next((e for e in entries if e is not None and same_question(e.prompt, f"prompt number {i}")), None)
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


async def paraphrases(encoder: str, thresholds: list[float]) -> dict:
    """Each split's hit rate and precision by threshold, through the plugin (embedding + same_question), and
    for the embedding alone."""
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    plugin = SemanticCachePlugin(SemanticCacheParams(encoder=encoder, threshold=min(thresholds), tenant_header="x-pair",
                                                     namespace=f"bench-{encoder}"))
    checked = []  # the similarity of a hit through the plugin, None for a miss
    for i, row in enumerate(rows):
        headers = {"x-pair": str(i)}
        first = RoutingContext({"messages": [{"role": "user", "content": row["a"]}]}, headers=headers)
        first.decision, first.model = "default", "m"
        await plugin.before(first)
        await plugin.after(first, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a"},
                                                "finish_reason": "stop"}]})
        second = RoutingContext({"messages": [{"role": "user", "content": row["b"]}]}, headers=headers)
        second.decision, second.model = "default", "m"
        hit = await plugin.before(second)
        checked.append(hit["turnout_cache"]["similarity"] if hit else None)
    vectors = get_encoder(encoder).encode([r["a"] for r in rows] + [r["b"] for r in rows])
    embedding_only = (vectors[:len(rows)] * vectors[len(rows):]).sum(axis=1).tolist()
    out = {}
    for split in sorted({r["split"] for r in rows}):
        index = [i for i, r in enumerate(rows) if r["split"] == split]
        same = sum(rows[i]["same"] for i in index)
        out[split] = {"same_meaning": same, "different_meaning": len(index) - same, "by_threshold": {
            f"{t:.2f}": {"checked": _rates([(checked[i] is not None and checked[i] >= t - 1e-9, rows[i]["same"])
                                            for i in index]),
                         "embedding_only": _rates([(embedding_only[i] >= t - 1e-9, rows[i]["same"]) for i in index])}
            for t in thresholds}}
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
    default = SemanticCacheParams().threshold
    grid = sorted({default, *(round(0.80 + 0.01 * k, 2) for k in range(13))})
    report["paraphrases"] = {enc: asyncio.run(paraphrases(enc, grid)) for enc in ("minilm-onnx", "minilm-static")}
    report["default_threshold"] = default
    t = Table(title="cache lookups (embedding excluded), µs")
    t.add_column("store @ entries", no_wrap=True)
    for col in ("exact p50", "exact p99", "semantic p50", "semantic p99", "semantic recall", "fill s"):
        t.add_column(col)
    for name, r in report["latency"].items():
        t.add_row(name, f"{r['exact_us']['p50_us']:.0f}", f"{r['exact_us']['p99_us']:.0f}", f"{r['semantic_us']['p50_us']:.0f}",
                  f"{r['semantic_us']['p99_us']:.0f}", f"{r['semantic_recall']:.3f}", f"{r['fill_s']}")
    console.print(t)
    for enc, splits in report["paraphrases"].items():
        for split, result in splits.items():
            p = Table(title=f"paraphrase pairs, {split} split ({result['same_meaning']} same, "
                            f"{result['different_meaning']} different), {enc}: hit rate / precision (false hits)")
            for col in ("threshold", "embedding + same_question", "embedding alone"):
                p.add_column(col)
            for thr, r in result["by_threshold"].items():
                mark = " (default)" if float(thr) == default else ""
                p.add_row(thr + mark, *(f"{r[k]['hit_rate']:.3f} / {r[k]['precision']:.3f} ({r[k]['false_hits']})"
                                        for k in ("checked", "embedding_only")))
            console.print(p)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
