"""Online learners against the offline-trained best router on the shared LLMRouter data (9 models, 14 tasks,
MIT; see ../shared/data/llmrouter/README.md), each replayed through the whole Router (`turnout.eval.replay`).

    python benchmarks/online.py --json bench-out/online.json --plot bench-out/online.png [--shared ../shared/data]
        [--dev] [--redis]

Splits (content-keyed, so a prompt and its copies stay on one side): 40 % of the rows train the offline routers
(and the warm-start artifact); the other 60 % are the held-out stream, replayed in three random orders. `--dev`
streams the training rows instead: the learners' defaults were chosen there, never on the stream reported.

Reward = score − 0.1 × cost / the dearest model's cost on that prompt (prices from the data's price list), for
every policy alike. The offline best router is the best of the learned routers on the stream in hindsight (a
choice that favours it). Goals checked:
- cold linucb / thompson within 5 % of the offline router's mean reward after 3,000 requests (the mean over
  requests 2,001–3,000, and over all of the first 3,000);
- warm-started never more than 1 % below it (running mean, from request 200 on) and above it by the end.
Intervals: 95 % percentile bootstrap over the stream's prompts (turnout/eval/bootstrap.py's resamples and
percentiles), pooled over the three orders. Also: select()+update() p50 per learner with 10 candidates, in memory
and (with --redis and a redis-server on PATH) with Redis."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _online_variants import CLUSTERED, COLD_ONLY, DEV_CHOICES, GUARDED, VARIANTS
from rich.console import Console
from rich.table import Table

from turnout.config import Config
from turnout.context import estimate_tokens
from turnout.eval.bootstrap import RESAMPLES, SEED, percentile_intervals
from turnout.eval.datasets import LLMROUTER_OUTPUT_TOKENS, llmrouter
from turnout.eval.replay import json_ready, replay
from turnout.eval.table import RoutingTable, held_out
from turnout.models.encoders import get_encoder
from turnout.pipeline import Router
from turnout.selection import selectors

COST_WEIGHT = 0.1
ORDERS = (0, 1, 2)
LEARNERS = ("thompson", "linucb", "epsilon_greedy", "ucb1")
OFFLINE = ("knn", "mlp", "hybrid", "cluster", "classifier", "mf")
WINDOW = (2000, 3000)
WARM_FROM = 200
console = Console(width=170)


def splits(table: RoutingTable) -> tuple[RoutingTable, RoutingTable]:
    train = [i for i, p in enumerate(table.prompts) if held_out(p, 40)]
    stream = [i for i, p in enumerate(table.prompts) if not held_out(p, 40)]
    return table.subset(train, "llmrouter[offline 40%]"), table.subset(stream, "llmrouter[stream 60%]")


def rewards_of(table: RoutingTable) -> np.ndarray:
    return table.scores - COST_WEIGHT * table.costs / table.costs.max(axis=1, keepdims=True)


def offline_routers(train: RoutingTable, stream: RoutingTable, out: Path) -> tuple[str, dict[str, Any], Path]:
    """Fit each learned router on the offline rows; its reward per stream row; the best one's artifact."""
    encoder = get_encoder("minilm-static")
    x_train, x_stream = encoder.encode(train.prompts), encoder.encode(stream.prompts)
    reward = rewards_of(stream)
    cost_norm = stream.costs / stream.costs.max(axis=1, keepdims=True)
    found = {}
    for name in OFFLINE:
        selector = selectors.get(name)(cost_weight=COST_WEIGHT).fit(train, x_train)
        predicted = selector.predict_quality(x_stream)[:, [selector.models_.index(m) for m in stream.models]]
        choice = np.argmax(predicted - COST_WEIGHT * cost_norm, axis=1)
        found[name] = {"per_row": reward[np.arange(len(stream)), choice], "selector": selector}
        console.print(f"offline {name}: mean reward {found[name]['per_row'].mean():.4f}", highlight=False)
    best = max(found, key=lambda n: found[n]["per_row"].mean())
    artifact = found[best]["selector"].save(out / f"offline-{best}")
    return best, {n: v["per_row"] for n, v in found.items()}, artifact


def config(table: RoutingTable, algorithm: str, params: dict[str, Any], state: dict[str, Any] | None) -> Config:
    # USD per 1M tokens back from the table's costs (tokens × price, as turnout.eval.datasets estimates them)
    tokens = estimate_tokens(table.prompts[0]) + LLMROUTER_OUTPUT_TOKENS
    prices = {m: float(table.costs[0, j] / tokens * 1e6) for j, m in enumerate(table.models)}
    return Config.model_validate({
        "models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "cost": {"input": p, "output": p}}
                   for m, p in prices.items()},
        "decisions": [{"name": "online", "models": list(table.models),
                       "algorithm": {"name": algorithm, "params": {"cost_weight": COST_WEIGHT, **params}}}],
        **({"state": state} if state else {}),
    })


async def run_learner(stream: RoutingTable, algorithm: str, params: dict[str, Any], seed: int) -> dict[str, Any]:
    router = Router.build(config(stream, algorithm, {"seed": seed, **params}, None))
    try:
        return await replay(router, stream, order="random", seed=seed)
    finally:
        await router.aclose()


def bootstrap(per_order: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Mean reward of the learner and of the offline router on the same rows (pooled over orders), their ratio,
    each with a 95 % interval from rows resampled with replacement."""
    learner = np.concatenate([a for a, _ in per_order])
    offline = np.concatenate([b for _, b in per_order])
    if not len(learner):
        return {"learner": None, "offline": None, "ratio": None, "ci95": None}  # a stream shorter than the window
    rng = np.random.default_rng(SEED)
    draws = rng.integers(0, len(learner), size=(RESAMPLES, len(learner)))
    samples = [{"learner": float(learner[d].mean()), "offline": float(offline[d].mean()),
                "ratio": float(learner[d].mean() / offline[d].mean())} for d in draws]
    return {"learner": float(learner.mean()), "offline": float(offline.mean()),
            "ratio": float(learner.mean() / offline.mean()), "ci95": percentile_intervals(samples)}


def goals(name: str, runs: list[dict[str, Any]], offline_row: np.ndarray, stream: RoutingTable,
          orders: tuple[int, ...] = ORDERS) -> dict[str, Any]:
    """Per order, the learner's rewards in stream order and the offline router's on the same rows."""
    paired = []
    for seed, result in zip(orders, runs):
        order = np.random.default_rng(seed).permutation(len(stream))
        paired.append((result["rewards"]["chosen"], offline_row[order]))
    lo, hi = WINDOW
    out: dict[str, Any] = {"window_2001_3000": bootstrap([(a[lo:hi], b[lo:hi]) for a, b in paired]),
                           "first_3000": bootstrap([(a[:hi], b[:hi]) for a, b in paired]),
                           "whole_stream": bootstrap(paired),
                           "last_1000": bootstrap([(a[-1000:], b[-1000:]) for a, b in paired])}
    gaps = []
    for a, b in paired:
        steps = np.arange(1, len(a) + 1)
        gaps.append((np.cumsum(a) / steps) / (np.cumsum(b) / steps) - 1)
    out["running_gap"] = {"min_from_200": float(min(g[WARM_FROM:].min() for g in gaps)),
                          "worst_at_request": [int(WARM_FROM + 1 + np.argmin(g[WARM_FROM:])) for g in gaps],
                          "at": {str(t): [float(g[t - 1]) for g in gaps] for t in (500, 1000, 2000, 3000)
                                 if t <= len(gaps[0])},
                          "at_end": [float(g[-1]) for g in gaps]}
    if name.endswith("cold") and name.split(":")[0].split("+")[0] in ("linucb", "thompson"):
        out["goal"] = "within 5 % after 3,000 requests"
        ratio = out["window_2001_3000"]["ratio"]
        out["met"] = None if ratio is None else ratio >= 0.95
    elif name.endswith("warm"):
        out["goal"] = "never > 1 % below (from request 200), above at the end"
        out["met"] = out["running_gap"]["min_from_200"] >= -0.01 and min(out["running_gap"]["at_end"]) > 0
    return out


def overhead_prior(directory: Path, arms: list[str], texts: list[str]) -> str:
    """An mlp router over the ten timing arms (random scores): what a warm start costs per pick is its predict."""
    encoder = get_encoder("minilm-static")
    rng = np.random.default_rng(0)
    table = RoutingTable(texts, arms, rng.random((len(texts), len(arms))), np.full((len(texts), len(arms)), 1e-4))
    selectors.get("mlp")(cost_weight=COST_WEIGHT).fit(table, encoder.encode(texts)).save(directory / "timing-prior")
    return str(directory / "timing-prior")


async def overhead(redis_url: str | None, directory: Path, n: int = 2000) -> dict[str, dict[str, float]]:
    """select() + update() p50 in µs per learner (defaults, cold) and per variant, 10 candidates, warm caches,
    200 distinct request embeddings in turn (so clusters get fitted); memory and Redis."""
    from turnout.config import Cost
    from turnout.context import RoutingContext
    from turnout.outcomes import Outcome
    from turnout.selection.base import Candidate, build_selector
    from turnout.selection.learned import embedding_key

    arms = [f"m{k}" for k in range(10)]
    candidates = [Candidate(a, Cost(input=0.1 * (k + 1), output=0.1 * (k + 1))) for k, a in enumerate(arms)]
    texts = [f"question {k}: how do I {w} a list in python" for k, w in
             enumerate(["sort", "reverse", "filter", "sum", "split"] * 40)]
    vectors = get_encoder("minilm-static").encode(texts)
    prior = overhead_prior(directory, arms, texts)
    timed = [(name, name, {}) for name in LEARNERS] + [
        ("thompson+clusters", "thompson", CLUSTERED), ("linucb+warm", "linucb", {"warm_start": prior}),
        *((label, learner, {**params, "warm_start": prior}) for label, (learner, params) in GUARDED.items())]
    found: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(0)
    for store in ("memory", "redis") if redis_url else ("memory",):
        for label, name, params in timed:
            sel = build_selector(name, {"cost_weight": COST_WEIGHT, **params}, "bench", None, arms)
            if store == "redis":
                sel.bind_state(type("S", (), {"store": "redis", "redis_url": redis_url})(), f"bench:{time.time_ns()}")
            select_us, update_us = [], []
            for i in range(n):
                ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "x"}]})
                ctx.cache[embedding_key("minilm-static")] = vectors[i % len(vectors)]
                t0 = time.perf_counter_ns()
                choice = sel.select(ctx, candidates)
                t1 = time.perf_counter_ns()
                await sel.update(Outcome("r", model=choice.model, features=choice.features), float(rng.random()))
                t2 = time.perf_counter_ns()
                select_us.append((t1 - t0) / 1e3)
                update_us.append((t2 - t1) / 1e3)
            await sel.aclose()
            s, u = np.array(select_us[n // 10:]), np.array(update_us[n // 10:])
            found[f"{label}:{store}"] = {"select_p50_us": round(float(np.median(s)), 1),
                                         "update_p50_us": round(float(np.median(u)), 1),
                                         "select_plus_update_p50_us": round(float(np.median(s + u)), 1)}
    return found


def learner_entry(stream: RoutingTable, learner: str, name: str, params: dict[str, Any],
                  offline_row: np.ndarray, orders: tuple[int, ...] = ORDERS) -> tuple[dict[str, Any], np.ndarray]:
    """One learner replayed in every order: its report entry, and its mean regret curve against the offline router."""
    started = time.perf_counter()
    runs = [asyncio.run(run_learner(stream, learner, params, seed)) for seed in orders]
    curve = np.mean([np.cumsum(offline_row[np.random.default_rng(s).permutation(len(stream))] - r["rewards"]["chosen"])
                     for s, r in zip(orders, runs)], axis=0)
    return {"params": dict(params), "mean_reward": float(np.mean([r["mean_reward"] for r in runs])),
            "explore_share": float(np.mean([r["explore_share"] for r in runs])),
            "regret_vs_oracle": [r["regret_vs_oracle"] for r in runs],
            "regret_vs_best_fixed": [r["regret_vs_best_fixed"] for r in runs],
            "goals": goals(name, runs, offline_row, stream, orders), "seconds": round(time.perf_counter() - started, 1),
            "replays": [{k: v for k, v in json_ready(r).items() if k != "curve"} for r in runs]}, curve


def runs_to_do(labels: list[str], extra: dict[str, Any],
               starts: tuple[str, ...] = ("cold", "warm")) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(label, cold|warm, learner, params) for each label asked: a learner's defaults, or a variant; `label@tag`
    is the same learner again, with the params `--params` gives under the whole label (for trying settings)."""
    todo = []
    for label in labels:
        base = label.split("@")[0]
        if base in GUARDED:
            learner, params = GUARDED[base]
            todo.append((label, "warm", learner, {**params, **extra.get(label, {})}))
            continue
        learner, params = {**VARIANTS, **COLD_ONLY}.get(base, (base, {}))
        for start in [s for s in starts if s == "cold" or base not in COLD_ONLY]:
            todo.append((label, start, learner, {**params, **extra.get(label, {})}))
    return todo


def plot_against_offline(curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    for k, (name, regret) in enumerate(sorted(curves.items())):
        ax.plot(np.arange(1, len(regret) + 1), regret, color=f"C{k // 2 % 10}",
                linestyle="-" if name.endswith("warm") else "--", label=name)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("requests")
    ax.set_ylabel("cumulative regret against the offline best router (reward)")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def results_table(report: dict[str, Any]) -> Table:
    t = Table(title=f"online learners vs offline {report['offline']['best']} "
                    f"(mean reward {report['offline']['mean_reward']:.4f}) on {report['stream']}")
    for col in ("learner", "mean reward 2001–3000 / offline (95% CI)", "first 3000 / offline", "whole stream / offline",
                "last 1000 / offline", "worst running gap (≥200)", "gap at end", "explore share", "goal met"):
        t.add_column(col)
    for name, r in report["learners"].items():
        g = r["goals"]
        w, f, a = g["window_2001_3000"], g["first_3000"], g["whole_stream"]
        t.add_row(name, "–" if w["ratio"] is None else
                  f"{w['ratio']:.3f} [{w['ci95']['ratio'][0]:.3f}, {w['ci95']['ratio'][1]:.3f}]",
                  f"{f['ratio']:.3f}", f"{a['ratio']:.3f}", f"{g['last_1000']['ratio']:.3f}",
                  f"{g['running_gap']['min_from_200']:+.2%}",
                  ", ".join(f"{x:+.2%}" for x in g["running_gap"]["at_end"]), f"{r['explore_share']:.1%}",
                  {True: "yes", False: "no"}.get(g.get("met"), "–"))
    return t


def overhead_table(found: dict[str, dict[str, float]]) -> Table:
    t = Table(title="select() + update() with 10 candidates (p50, µs)")
    for col in ("learner:store", "select", "update", "select + update"):
        t.add_column(col)
    for name, v in found.items():
        t.add_row(name, str(v["select_p50_us"]), str(v["update_p50_us"]), str(v["select_plus_update_p50_us"]))
    return t


def timed(with_redis: bool) -> dict[str, dict[str, float]]:
    """The overhead table, in memory and (with_redis: on a redis-server started here) with Redis."""
    redis = None
    if with_redis:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' redis-server starter
        from tests.plugins.conftest import RedisServer

        redis = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(overhead(redis.url if redis else None, Path(tmp)))
    finally:
        if redis:
            redis.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=Path("bench-out/online.json"))
    ap.add_argument("--plot", type=Path, default=Path("bench-out/online.png"))
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--dev", action="store_true", help="stream half of the training rows (for choosing defaults)")
    ap.add_argument("--redis", action="store_true", help="also time the learners on a local redis-server")
    ap.add_argument("--starts", default="cold,warm", help="which starts of the non-guarded learners to run")
    ap.add_argument("--no-overhead", action="store_true", help="skip the select()+update() timing table")
    ap.add_argument("--overhead-only", action="store_true", help="only the select()+update() timing table")
    ap.add_argument("--learners", default=",".join((*LEARNERS, *VARIANTS, *COLD_ONLY, *GUARDED)))
    ap.add_argument("--orders", default=",".join(map(str, ORDERS)),
                    help="seeds of the random stream orders (the three reported are 0,1,2; others: untuned checks)")
    ap.add_argument("--params", default="{}", help="JSON: extra params per learner, e.g. {\"linucb\": {\"dim\": 32}}")
    args = ap.parse_args()
    train, stream = splits(llmrouter(args.shared))
    if args.dev:  # the offline rows split 40 / 60 again, by a differently salted key
        train, stream = (train.subset([i for i, p in enumerate(train.prompts) if not held_out("dev:" + p, 60)],
                                      "dev-train"),
                         train.subset([i for i, p in enumerate(train.prompts) if held_out("dev:" + p, 60)],
                                      "dev-stream"))
    extra = json.loads(args.params)
    orders = tuple(int(x) for x in args.orders.split(","))
    if args.overhead_only:
        report = {"overhead": timed(args.redis)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(overhead_table(report["overhead"]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        best, offline, artifact = offline_routers(train, stream, Path(tmp))
        report: dict[str, Any] = {
            "data": "llmrouter (drop_leaked)", "train": f"{train.name}: {len(train)} prompts",
            "stream": f"{stream.name}: {len(stream)} prompts", "orders": list(orders), "cost_weight": COST_WEIGHT,
            "dev_choices": DEV_CHOICES,
            "offline": {"best": best, "mean_reward": float(offline[best].mean()),
                        "all": {n: float(v.mean()) for n, v in offline.items()}},
            "best_single": {m: float(v) for m, v in zip(stream.models, rewards_of(stream).mean(axis=0))},
            "oracle_mean_reward": float(rewards_of(stream).max(axis=1).mean()), "learners": {}}
        curves: dict[str, np.ndarray] = {}
        for label, start, learner, params in runs_to_do(args.learners.split(","), extra, tuple(args.starts.split(","))):
            name = f"{label}:{start}"
            params = {**params, **({"warm_start": str(artifact)} if start == "warm" else {})}
            report["learners"][name], curves[name] = learner_entry(stream, learner, name, params, offline[best], orders)
            if start == "warm":
                report["learners"][name]["params"]["warm_start"] = f"offline-{best}"
            console.print(f"{name}: mean reward {report['learners'][name]['mean_reward']:.4f}", highlight=False)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")  # the learners' figures, before the timing runs
    plot_against_offline(curves, args.plot, f"{stream.name}, {len(orders)} random orders (mean)")
    report["overhead"] = {} if args.no_overhead else timed(args.redis)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    console.print(results_table(report))
    console.print(overhead_table(report["overhead"]))


if __name__ == "__main__":
    main()
