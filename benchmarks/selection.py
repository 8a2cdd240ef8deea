"""select() latency of every selection algorithm with 10 candidate models (request embedding precomputed), and
training time of the learned ones on the LLMRouter train split.

    python benchmarks/selection.py --json bench-out/selection.json [--shared ../shared/data] [--repeat 500]
        [--only mlp,ensemble]

LLMRouter has 9 scored models; a 10th candidate is a copy of gemma-2-9b-it at twice the price, so every
selector ranks 10. Target (issue 5): select() < 1 ms p50 for every algorithm."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np
sys.path.insert(0, str(Path(__file__).parent))
from _load import bench_args, percentiles  # noqa: E402
from rich.console import Console
from rich.table import Table

from turnout.config import Cost
from turnout.context import RoutingContext
from turnout.eval.datasets import load_named
from turnout.eval.table import RoutingTable
from turnout.models.encoders import get_encoder
from turnout.models.request import request_embedding
from turnout.selection import Candidate, selectors


def ten_models(table: RoutingTable) -> RoutingTable:
    j = table.models.index("gemma-2-9b-it")
    return RoutingTable(table.prompts, table.models + ["gemma-2-9b-it-premium"],
                        np.column_stack([table.scores, table.scores[:, j]]),
                        np.column_stack([table.costs, 2 * table.costs[:, j]]), table.tasks, table.splits,
                        name="llmrouter-10")


def only_option() -> set[str] | None:
    """--only NAMES (comma-separated): time these algorithms only (taken out before the shared arguments)."""
    if "--only" not in sys.argv:
        return None
    i = sys.argv.index("--only")
    names = set(sys.argv[i + 1].split(","))
    del sys.argv[i:i + 2]
    return names


def main() -> None:
    only = only_option()
    args = bench_args(__doc__, 500)
    table = ten_models(load_named("llmrouter", args.shared))
    train, test = table.split("train"), table.split("test")
    x_train = get_encoder().encode(train.prompts)
    candidates = [Candidate(m, Cost(input=0.1 * (i + 1), output=0.2 * (i + 1))) for i, m in enumerate(table.models)]
    loop = asyncio.new_event_loop()
    report: dict = {"candidates": len(candidates), "train_rows": len(train), "algorithms": {}}
    for name in selectors.names():
        if only is not None and name not in only:
            continue
        cls = selectors.get(name)
        entry: dict = {}
        if getattr(cls, "needs_fit", False):
            start = time.perf_counter()
            selector = cls().fit(train, x_train)
            entry["train_s"] = round(time.perf_counter() - start, 3)
        else:
            selector = cls()
        samples = []
        for i in range(args.repeat):
            ctx = RoutingContext({"messages": [{"role": "user", "content": test.prompts[i % len(test)]}]},
                                 request_id=str(i))
            loop.run_until_complete(request_embedding(ctx))  # precomputed, as in the server
            start = time.perf_counter()
            selector.select(ctx, candidates)
            samples.append((time.perf_counter() - start) * 1e6)
        entry.update(percentiles(samples))
        report["algorithms"][name] = entry
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    out = Table(title=f"select() with {len(candidates)} candidates; training on {len(train)} prompts",
                title_justify="left")
    for col in ("algorithm", "select p50 µs", "select p99 µs", "train s"):
        out.add_column(col, justify="left" if col == "algorithm" else "right")
    for name, entry in report["algorithms"].items():
        out.add_row(name, f"{entry['p50_us']:.0f}", f"{entry['p99_us']:.0f}", str(entry.get("train_s", "-")))
    Console(width=100).print(out)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
