"""What the online learners' models could reach with every label: the ceiling behind benchmarks/online.py's goals.

    python benchmarks/online_bounds.py [--json bench-out/online-bounds.json] [--shared ../shared/data]

A bandit sees one model's score per request; here each model class the learners use is fitted on all nine
scores of half the stream and evaluated on the other half (and the reverse; "cross-fit"), and, for reference, on
the same rows it was fitted on (in-sample, an optimistic figure). The classes:
- residual ridge: linucb's warm model, per model a ridge regression of (reward − the offline router's prediction)
  on (the 16-d projected embedding, 1, the prediction), added to the prediction;
- cluster offsets: thompson+clusters' warm model, the prediction plus a per-cluster, per-model mean residual
  (16 k-means clusters of the centred embeddings, shrunk by 10 pseudo-observations);
- best model per cluster: the cold clustered learner's target, in hindsight on the whole stream;
- cold, full information: per stream order (benchmarks/online.py's orders 0, 1, 2), clusters fitted on the first
  200 requests as the learner fits them, every model's score on each of the first 2,000 requests, and then the
  best model per cluster (shrunk towards the best overall by 10 pseudo-observations) played on requests
  2,001–3,000, the cold goal's window; and the best single model by the same 2,000 requests. A cold bandit sees
  one score in nine of those 2,000 requests, so it cannot do better than the clustered figure;
- warm, the offline router or a fixed model per cluster: in each cluster, the better of "follow the offline
  router" and "always the model that earned most there" (decided on one half, played on the other); with the
  data's own task labels as the clusters for reference (a labelling no learner has);
- warm, near ties flipped: where the offline router's margin over its runner-up is under m, play the runner-up
  in the clusters (per runner-up model) where that earned more on the other half.
All as a share of the offline best router's mean reward on the same rows (`mlp` on the stream). If a class
cannot beat the offline router with every label, a learner of that class cannot beat it with one in nine."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from online import COST_WEIGHT, rewards_of, splits

from turnout.eval.datasets import llmrouter
from turnout.eval.table import RoutingTable, held_out
from turnout.models.encoders import get_encoder
from turnout.selection import selectors
from turnout.selection.clusters import kmeans, unit_rows
from turnout.selection.linucb import PROJECTION_SEED

CLUSTERS, SHRINK, FIT_ON = 16, 10.0, 200
ORDERS, LEARN_ON, WINDOW = (0, 1, 2), 2000, (2000, 3000)  # benchmarks/online.py's orders and the cold goal's window
MARGINS = (0.01, 0.02, 0.05)


def residual_ridge(x: np.ndarray, prior: np.ndarray, reward: np.ndarray, fit: np.ndarray, on: np.ndarray) -> np.ndarray:
    predicted = prior[on].copy()
    for a in range(prior.shape[1]):
        z_fit = np.hstack([x[fit], prior[fit, a:a + 1]])
        theta = np.linalg.solve(z_fit.T @ z_fit + np.eye(z_fit.shape[1]), z_fit.T @ (reward[fit, a] - prior[fit, a]))
        predicted[:, a] += np.hstack([x[on], prior[on, a:a + 1]]) @ theta
    return predicted


def cluster_offsets(cells: np.ndarray, prior: np.ndarray, reward: np.ndarray, fit: np.ndarray,
                    on: np.ndarray) -> np.ndarray:
    predicted = prior[on].copy()
    for j in range(CLUSTERS):
        mask = cells[fit] == j
        if mask.any():
            predicted[cells[on] == j] += (reward[fit][mask] - prior[fit][mask]).sum(axis=0) / (mask.sum() + SHRINK)
    return predicted


def centred_cells(x: np.ndarray, sample: np.ndarray, k: int = CLUSTERS, seed: int = 0) -> np.ndarray:
    centre = sample.mean(axis=0)
    return np.argmax(unit_rows(x - centre) @ kmeans(unit_rows(sample - centre), k, seed).T, axis=1)


def cold_full_information(x: np.ndarray, reward: np.ndarray, offline: np.ndarray) -> dict[str, Any] | None:
    """Per order: every label of the first LEARN_ON requests, then greedy per cluster (and one fixed model) on
    the window; each as a share of the offline router on the window's rows, and their mean over the orders (None
    for a stream shorter than the window, such as the dev stream)."""
    lo, hi = WINDOW
    if len(x) < hi:
        return None
    per_cluster, fixed = [], []
    for seed in ORDERS:
        order = np.random.default_rng(seed).permutation(len(x))
        seen, window = order[:LEARN_ON], order[lo:hi]
        cells = centred_cells(x, x[order[:FIT_ON]])
        overall = reward[seen].mean(axis=0)
        best = np.array([((reward[seen][cells[seen] == j].sum(axis=0) + SHRINK * overall)
                          / ((cells[seen] == j).sum() + SHRINK)).argmax() for j in range(CLUSTERS)])
        per_cluster.append(reward[window, best[cells[window]]].sum() / offline[window].sum())
        fixed.append(reward[window, overall.argmax()].sum() / offline[window].sum())
    return {"clusters_greedy": [round(float(v), 4) for v in per_cluster], "mean": round(float(np.mean(per_cluster)), 4),
            "best_single_model": [round(float(v), 4) for v in fixed]}


def router_or_model(groups: np.ndarray, reward: np.ndarray, baseline: np.ndarray, a: np.ndarray,
                    b: np.ndarray) -> float:
    """Cross-fit: per group, the better (on one half) of the baseline's pick and the group's best model, played
    on the other half; as a share of the baseline's total."""
    total = 0.0
    for fit, on in ((a, b), (b, a)):
        for j in np.unique(groups[on]):
            f, o = fit[groups[fit] == j], on[groups[on] == j]
            best = int(reward[f].sum(axis=0).argmax()) if len(f) else -1
            total += reward[o, best].sum() if len(f) and reward[f, best].sum() > baseline[f].sum() else baseline[o].sum()
    return float(total / baseline.sum())


def flip_near_ties(cells: np.ndarray, reward: np.ndarray, prior: np.ndarray, a: np.ndarray,
                   b: np.ndarray) -> dict[str, float]:
    rows = np.arange(len(reward))
    ranked = np.argsort(-prior, axis=1)
    lead, runner = ranked[:, 0], ranked[:, 1]
    margin = prior[rows, lead] - prior[rows, runner]
    baseline, gain = reward[rows, lead], reward[rows, runner] - reward[rows, lead]
    groups = cells * prior.shape[1] + runner
    found = {}
    for m in MARGINS:
        total = baseline.sum()
        for fit, on in ((a, b), (b, a)):
            f, o = fit[margin[fit] < m], on[margin[on] < m]
            for j in np.unique(groups[o]):
                if gain[f[groups[f] == j]].sum() > 0:
                    total += gain[o[groups[o] == j]].sum()
        found[f"margin<{m}"] = round(float(total / baseline.sum()), 4)
    return found


def bounds(train: RoutingTable, stream: RoutingTable) -> dict[str, Any]:
    encoder = get_encoder("minilm-static")
    x_train, x_stream = encoder.encode(train.prompts), encoder.encode(stream.prompts)
    reward = rewards_of(stream)
    cost = stream.costs / stream.costs.max(axis=1, keepdims=True)
    mlp = selectors.get("mlp")(cost_weight=COST_WEIGHT).fit(train, x_train)
    prior = mlp.predict_quality(x_stream)[:, [mlp.models_.index(m) for m in stream.models]] - COST_WEIGHT * cost
    rows = np.arange(len(stream))
    offline = float(reward[rows, prior.argmax(axis=1)].mean())
    projection = np.random.default_rng(PROJECTION_SEED).standard_normal((16, x_stream.shape[1])) / 4.0
    x = np.hstack([x_stream @ projection.T, np.ones((len(stream), 1))])
    sample = x_stream[np.random.default_rng(0).permutation(len(stream))[:FIT_ON]]
    centre = sample.mean(axis=0)
    cells = np.argmax(unit_rows(x_stream - centre) @ kmeans(unit_rows(sample - centre), CLUSTERS, 0).T, axis=1)
    half = np.random.default_rng(0).permutation(len(stream))
    a, b = half[: len(stream) // 2], half[len(stream) // 2:]

    def share(model) -> dict[str, float]:
        inside = reward[rows, model(rows, rows).argmax(axis=1)].mean()
        crossed = (reward[b, model(a, b).argmax(axis=1)].sum() + reward[a, model(b, a).argmax(axis=1)].sum()) / len(rows)
        return {"cross_fit": round(float(crossed) / offline, 4), "in_sample": round(float(inside) / offline, 4)}

    per_cluster = sum(reward[cells == j].mean(axis=0).max() * (cells == j).sum() for j in range(CLUSTERS) if (cells == j).any())
    baseline = reward[rows, prior.argmax(axis=1)]
    tasks = np.unique(np.array(stream.tasks), return_inverse=True)[1] if stream.tasks is not None else None
    return {"offline_mlp_mean_reward": offline,
            "cold_full_information_first_2000": cold_full_information(x_stream, reward, baseline),
            "warm_router_or_model_per_cluster": round(router_or_model(cells, reward, baseline, a, b), 4),
            "warm_router_or_model_per_task_labels": None if tasks is None else
            round(router_or_model(tasks, reward, baseline, a, b), 4),
            "warm_flip_near_ties": flip_near_ties(cells, reward, prior, a, b),
            "residual_ridge": share(lambda f, o: residual_ridge(x, prior, reward, f, o)),
            "cluster_offsets": share(lambda f, o: cluster_offsets(cells, prior, reward, f, o)),
            "best_model_per_cluster_hindsight": round(float(per_cluster / len(rows)) / offline, 4),
            "best_model_per_task_hindsight": round(float(sum(
                reward[np.array(stream.tasks) == t].mean(axis=0).max() * (np.array(stream.tasks) == t).sum()
                for t in set(stream.tasks)) / len(rows)) / offline, 4) if stream.tasks is not None else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=Path("bench-out/online-bounds.json"))
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()
    train, stream = splits(llmrouter(args.shared))
    dev_train = train.subset([i for i, p in enumerate(train.prompts) if not held_out("dev:" + p, 60)], "dev-train")
    dev_stream = train.subset([i for i, p in enumerate(train.prompts) if held_out("dev:" + p, 60)], "dev-stream")
    report = {"dev": bounds(dev_train, dev_stream), "stream": bounds(train, stream)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
