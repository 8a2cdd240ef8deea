"""Replay: the whole Router (signals, decisions, selectors offline and online, stickiness) over a RoutingTable as
a stream of requests, with no backend call. Each row is routed by `Router.route` — the serving code path — and
the table's score and cost for the chosen model become the outcome fed back through `Router.learn`.

Regret is measured in the reward of the routed decision's selector (quality net of whatever it weighs), each
model's reward on each row computed by the same `reward`: against the best fixed model (the model with the most
reward over the whole stream, in hindsight) and against the oracle (the best model of each row)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from turnout.context import RoutingContext, estimate_tokens
from turnout.eval.datasets import LLMROUTER_OUTPUT_TOKENS
from turnout.eval.table import DataError, RoutingTable
from turnout.outcomes import Outcome

CURVE_POINTS = 200


def stream_order(n: int, order: str, seed: int) -> np.ndarray:
    if order == "table":
        return np.arange(n)
    if order == "random":
        return np.random.default_rng(seed).permutation(n)
    raise DataError(f"--order must be 'random' or 'table', got {order!r}")


def check_models(router: Any, table: RoutingTable) -> None:
    missing = sorted({m for d in router.decisions.values() for m in d.config.models} - set(table.models))
    if missing:
        raise DataError(f"{table.name} has no scores for {', '.join(missing)} (its models: {', '.join(table.models)}); "
                        f"the replayed config's decisions may use only those")


async def replay(router: Any, table: RoutingTable, *, order: str = "random", seed: int = 0, limit: int | None = None,
                 feedback: str = "scores", alias: str | None = None,
                 on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Route every row (in `order`), learn from its score unless `feedback` is "none"; the report."""
    if feedback not in ("scores", "none"):
        raise DataError(f"--feedback must be 'scores' or 'none', got {feedback!r}")
    check_models(router, table)
    rows = stream_order(len(table), order, seed)[:limit]
    alias = alias or router.config.routing.aliases[0]
    index = {m: j for j, m in enumerate(table.models)}
    chosen, rewards, explored, switched, decisions = [], [], [], [], Counter()
    for step, i in enumerate(rows):
        ctx = RoutingContext({"model": alias, "messages": [{"role": "user", "content": table.prompts[i]}]})
        route = await router.route(ctx)
        selector = router.decisions[route.decision].selector
        outcomes = [_outcome(ctx, route, table, i, j, m) for m, j in index.items()]
        rewards.append([selector.reward(o, float(table.scores[i, j])) for o, j in zip(outcomes, index.values())])
        j = index[route.model]
        chosen.append(j)
        explored.append(route.choice.explored)
        switched.append(bool(getattr(route, "switched", False)))
        decisions[route.decision] += 1
        if feedback == "scores":
            await router.learn(outcomes[j], float(table.scores[i, j]))
        if on_step is not None:
            on_step(step + 1)
    return report(table, rows, np.array(chosen, dtype=int), np.array(rewards), explored, switched, decisions,
                  order=order, seed=seed, feedback=feedback)


def _outcome(ctx: RoutingContext, route: Any, table: RoutingTable, i: int, j: int, model: str) -> Outcome:
    latency = float(table.latencies[i, j]) if table.latencies is not None and np.isfinite(table.latencies[i, j]) else 0.0
    return Outcome(ctx.request_id, time=time.time(), tenant=ctx.caller.key_id, decision=route.decision, model=model,
                   mode=route.mode, candidates=dict(route.choice.scores), cost_usd=float(table.costs[i, j]),
                   prompt_tokens=estimate_tokens(table.prompts[i]), completion_tokens=LLMROUTER_OUTPUT_TOKENS,
                   latency_s=latency, session=getattr(route, "session", None),
                   switched=bool(getattr(route, "switched", False)), explored=route.choice.explored,
                   features=route.choice.features if model == route.model else None)


def report(table: RoutingTable, rows: np.ndarray, chosen: np.ndarray, rewards: np.ndarray, explored: list[bool],
           switched: list[bool], decisions: Counter, **settings: Any) -> dict[str, Any]:
    n = len(rows)
    if n == 0:
        raise DataError(f"{table.name}: nothing to replay")
    got = rewards[np.arange(n), chosen]
    best_fixed = int(np.argmax(rewards.sum(axis=0)))
    regret_fixed = np.cumsum(rewards[:, best_fixed] - got)
    regret_oracle = np.cumsum(rewards.max(axis=1) - got)
    at = np.unique(np.linspace(1, n, min(n, CURVE_POINTS)).astype(int)) - 1
    load = Counter(table.models[j] for j in chosen)
    return {
        "data": table.name, "rows": n, **settings,
        "mean_quality": float(table.scores[rows, chosen].mean()),
        "mean_cost_usd": float(table.costs[rows, chosen].mean()),
        "total_cost_usd": float(table.costs[rows, chosen].sum()),
        "mean_reward": float(got.mean()),
        "best_fixed": {"model": table.models[best_fixed], "mean_reward": float(rewards[:, best_fixed].mean()),
                       "mean_quality": float(table.scores[rows, best_fixed].mean())},
        "oracle": {"mean_reward": float(rewards.max(axis=1).mean()),
                   "mean_quality": float(table.scores[rows].max(axis=1).mean())},
        "regret_vs_best_fixed": float(regret_fixed[-1]),
        "regret_vs_oracle": float(regret_oracle[-1]),
        "explore_share": float(np.mean(explored)),
        "switches": int(sum(switched)),
        "decisions": dict(decisions),
        "load": {m: load.get(m, 0) / n for m in table.models},
        "curve": {"step": (at + 1).tolist(), "regret_vs_best_fixed": regret_fixed[at].round(4).tolist(),
                  "regret_vs_oracle": regret_oracle[at].round(4).tolist(),
                  "mean_reward": (np.cumsum(got)[at] / (at + 1)).round(5).tolist()},
        "rewards": {"chosen": got, "per_model": rewards},  # arrays for callers (benchmarks); dropped from JSON
    }


def json_ready(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "rewards"}


def plot(results: dict[str, dict[str, Any]], path: Any, title: str = "") -> None:
    """Cumulative regret against the best fixed model (solid) and the oracle (dashed), one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for k, (name, result) in enumerate(results.items()):
        curve, colour = result["curve"], f"C{k % 10}"
        ax.plot(curve["step"], curve["regret_vs_best_fixed"], color=colour, label=f"{name} vs best fixed")
        ax.plot(curve["step"], curve["regret_vs_oracle"], color=colour, linestyle="--", alpha=0.6,
                label=f"{name} vs oracle")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("requests")
    ax.set_ylabel("cumulative regret (reward)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    from pathlib import Path

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
