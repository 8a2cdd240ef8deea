"""GraphRouter (Feng et al., 2024) without a GNN: prompts, tasks and models as one graph, scores on the
prompt–model edges, smoothed by label propagation along prompt–prompt similarity edges and prompt–task edges.
A new prompt joins the graph inductively through its nearest training prompts (and, through them, their
task); its edge to each model is read off its neighbourhood.

Tasks come from the data's `task` column; without one, k-means clusters of the prompts stand in."""

from __future__ import annotations

from typing import Any

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import LearnedSelector, normalise_rows


@register("graph")
class GraphRouterSelector(LearnedSelector):
    def __init__(self, *, neighbours: int = 16, alpha: float = 0.5, task_weight: float = 0.3, steps: int = 8,
                 temperature: float = 20.0, n_tasks: int = 16, seed: int = 0, cost_weight: float = 0.0) -> None:
        self.neighbours = neighbours  # prompt–prompt edges per node
        self.alpha = alpha  # share of a node's label that comes from its neighbours in each propagation step
        self.task_weight = task_weight  # share of a new prompt's prediction that comes from its task node
        self.steps = steps
        self.temperature = temperature  # edge weight exp(temperature × cosine)
        self.n_tasks = n_tasks
        self.seed = seed
        self.cost_weight = cost_weight

    def fit(self, table: Any, x: np.ndarray | None = None) -> "GraphRouterSelector":
        self._tasks = list(table.tasks)
        return super().fit(table, x)  # type: ignore[return-value]

    def _task_ids(self, points: np.ndarray) -> np.ndarray:
        names = getattr(self, "_tasks", [])
        if names and all(names):
            self.task_names_ = sorted(set(names))
            return np.array([self.task_names_.index(t) for t in names])
        from sklearn.cluster import KMeans

        k = min(self.n_tasks, len(points))
        self.task_names_ = [f"cluster-{i}" for i in range(k)]
        return KMeans(n_clusters=k, random_state=self.seed, n_init=4).fit(points).labels_

    def _edges(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nearest training prompts of each row and their normalised edge weights."""
        k = min(self.neighbours, sims.shape[1])
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        near = np.take_along_axis(sims, nearest, axis=1)
        weights = np.exp(self.temperature * (near - near.max(axis=1, keepdims=True)))
        return nearest, weights / weights.sum(axis=1, keepdims=True)

    def _fit(self, x, scores, costs):
        points = normalise_rows(x).astype(np.float32)
        tasks = self._task_ids(points)
        task_quality = np.stack([scores[tasks == t].mean(axis=0) if (tasks == t).any() else scores.mean(axis=0)
                                 for t in range(len(self.task_names_))])
        blocks = [self._edges(points[i:i + 2048] @ points.T) for i in range(0, len(points), 2048)]
        nearest = np.vstack([b[0] for b in blocks])  # blockwise: the full similarity matrix may not fit
        weights = np.vstack([b[1] for b in blocks])
        self_edge = nearest == np.arange(len(points))[:, None]
        weights = np.where(self_edge, 0.0, weights)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        labels = scores.astype(np.float64)
        prior = (1 - self.alpha) * scores + self.alpha * 0.5 * task_quality[tasks]
        for _ in range(self.steps):  # label propagation over prompt–prompt and prompt–task edges
            labels = prior + self.alpha * 0.5 * np.einsum("nk,nkm->nm", weights, labels[nearest])
        self.points_, self.labels_ = points, labels.astype(np.float32)
        self.tasks_, self.task_quality_ = tasks.astype(np.int32), task_quality.astype(np.float32)

    def predict_quality(self, x):
        nearest, weights = self._edges(normalise_rows(np.asarray(x, dtype=np.float32)) @ self.points_.T)
        from_prompts = np.einsum("nk,nkm->nm", weights, self.labels_[nearest])
        votes = np.zeros((len(x), len(self.task_quality_)), dtype=np.float32)
        np.add.at(votes, (np.arange(len(x))[:, None], self.tasks_[nearest]), weights)
        from_tasks = votes @ self.task_quality_  # the prompt's edge to each task, weighted by its neighbours
        return (1 - self.task_weight) * from_prompts + self.task_weight * from_tasks
