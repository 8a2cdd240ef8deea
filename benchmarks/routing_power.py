"""How far a test split of this size can tell a router's cost for 95 % / 100 % of the best model's quality.

    python benchmarks/routing_power.py --json bench-out/routing_power.json [--shared ../shared/data]
        [--datasets llmrouter,gsm8k,mmlu] [--routers mlp,ensemble] [--samples 500] [--cv 5]

Each router's out-of-fold predictions on a dataset's train split (K folds, as `routing_quality.py --cv`) stand in
for a router that has not seen the prompts. From the train prompts of the test split's tasks, the script draws
`--samples` samples the size of the test split, with its number of prompts per task (with replacement), and
finds on each the least cost (as a share of that sample's best single model's) at which the router reaches 95 %
and 100 % of that model's quality. The spread of those figures is how far one test split of that size moves
them by chance alone: where it is wide, a test split can neither show nor refute a goal such as "95 % at ≤ 15 %".
Beside it, the cheapest model's quality as a share of the best single model's, on those samples and on the test
split itself: where the test split's share lies outside the samples' range, the test prompts differ from the
train prompts of the same tasks, and a router's figure there moves for that reason too. No router is run on the
test splits; only their sizes, task mixes and single models' qualities are read."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from routing_quality import out_of_fold
from turnout.eval import metrics
from turnout.eval.datasets import load_named
from turnout.eval.table import RoutingTable
from turnout.models.encoders import get_encoder

TARGETS = (0.95, 1.0)
GOALS = {0.95: 0.15, 1.0: 0.40}  # issue 17's: 95 % of the best model's quality at ≤ 15 % of its cost, 100 % at ≤ 40 %


def cost_shares(table: RoutingTable, predicted: np.ndarray) -> dict[float, float]:
    """The least cost, as a share of the best single model's, at which the router's hull reaches each target
    share of that model's quality (inf: not reached)."""
    ref = metrics.reference(table)
    best_cost, best_quality = ref.single[ref.strong]
    points, _ = metrics.sweep(table, predicted)
    out = {}
    for target in TARGETS:
        cost = metrics.cost_for_quality(points, target * best_quality)
        out[target] = float("inf") if cost is None else cost / best_cost
    return out


def samples_like(train: RoutingTable, test: RoutingTable, count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` row samples of `train` with the test split's size and prompts per task (with replacement)."""
    per_task = Counter(test.tasks)
    by_task = {task: np.flatnonzero([t == task for t in train.tasks]) for task in per_task}
    missing = [task for task, rows in by_task.items() if not len(rows)]
    if missing:
        raise SystemExit(f"the train split has no prompts of the test split's tasks {missing}")
    rng = np.random.default_rng(seed)
    return [np.concatenate([rng.choice(by_task[task], n) for task, n in sorted(per_task.items())])
            for _ in range(count)]


def summary(values: list[float]) -> dict:
    ranked = np.sort(np.asarray(values))  # percentiles by rank: "not reached" (inf) is a value like any other
    return {name: float(ranked[min(len(ranked) - 1, int(q * len(ranked)))])
            for name, q in (("median", 0.5), ("p5", 0.05), ("p95", 0.95))}


def cheapest_share(table: RoutingTable) -> float:
    """The cheapest model's mean quality as a share of the best single model's."""
    ref = metrics.reference(table)
    return ref.single[ref.weak][1] / ref.single[ref.strong][1]


def power(train: RoutingTable, test: RoutingTable, predicted: np.ndarray, count: int) -> dict:
    whole = cost_shares(train, predicted)
    samples = [(rows, train.subset(rows)) for rows in samples_like(train, test, count)]
    draws = [cost_shares(sample, predicted[rows]) for rows, sample in samples]
    out = {"out_of_fold": {str(t): whole[t] for t in TARGETS},
           "cheapest_share": {"samples": summary([cheapest_share(sample) for _, sample in samples]),
                              "test": cheapest_share(test)}}
    for target in TARGETS:
        values = [d[target] for d in draws]
        out[str(target)] = {**summary(values), "goal": GOALS[target],
                            "share_meeting_goal": float(np.mean([v <= GOALS[target] for v in values]))}
    return out


def _pct(value: float) -> str:
    return "not reached" if not np.isfinite(value) else f"{100 * value:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--datasets", default="llmrouter")
    parser.add_argument("--routers", default="mlp,ensemble")
    parser.add_argument("--encoder", default="minilm-static")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--cv", type=int, default=5)
    args = parser.parse_args()
    report: dict = {"encoder": args.encoder, "cv": args.cv, "samples": args.samples, "runs": {}}
    table = Table(title="cost for 95 % / 100 % of the best model: all out-of-fold prompts, and test-sized samples "
                        "of them (median, 5th–95th percentile, share meeting issue 17's goal)")
    for column in ("data (test size)", "router", "out of fold", "95 %: samples", "≤ 15 %", "100 %: samples",
                   "≤ 40 %", "cheapest/best: samples", "test"):
        table.add_column(column)
    for name in args.datasets.split(","):
        data = load_named(name, args.shared)
        train, test = data.split("train"), data.split("test")
        x = get_encoder(args.encoder).encode(train.prompts)
        for router in args.routers.split(","):
            result = power(train, test, out_of_fold(train, x, args.encoder, router, args.cv), args.samples)
            report["runs"][f"{name}/{router}"] = {"test_prompts": len(test), "train_prompts": len(train), **result}
            a, b, share = result["0.95"], result["1.0"], result["cheapest_share"]
            table.add_row(f"{name} ({len(test)})", router,
                          f"{_pct(result['out_of_fold']['0.95'])} / {_pct(result['out_of_fold']['1.0'])}",
                          f"{_pct(a['median'])} ({_pct(a['p5'])}–{_pct(a['p95'])})", f"{100 * a['share_meeting_goal']:.0f}%",
                          f"{_pct(b['median'])} ({_pct(b['p5'])}–{_pct(b['p95'])})", f"{100 * b['share_meeting_goal']:.0f}%",
                          f"{_pct(share['samples']['median'])} ({_pct(share['samples']['p5'])}–"
                          f"{_pct(share['samples']['p95'])})", _pct(share["test"]))
    Console(width=160).print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
