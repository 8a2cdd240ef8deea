"""What the online learners' models could reach with every label: the ceiling behind benchmarks/online.py's goals.

    python benchmarks/online_bounds.py [--json bench-out/online-bounds.json] [--shared ../shared/data]

A bandit sees one model's score per request; here each model class the learners use is fitted on all nine
scores of half the stream and evaluated on the other half (and the reverse; "cross-fit"), and, for reference, on
the same rows it was fitted on (in-sample, an optimistic figure). The classes:
- residual ridge: linucb's warm model, per model a ridge regression of (reward − the offline router's prediction)
  on (the 16-d projected embedding, 1, the prediction), added to the prediction;
- cluster offsets: thompson+clusters' warm model, the prediction plus a per-cluster, per-model mean residual
  (16 k-means clusters of the centred embeddings, shrunk by 10 pseudo-observations);
- best model per cluster: the cold clustered learner's target, in hindsight on the whole stream.
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
    return {"offline_mlp_mean_reward": offline,
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
