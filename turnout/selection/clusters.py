"""Context clusters for the online learners: k centroids taken from a warm-start router that has them (a
`cluster` router's own; k-means on a knn / sw_ranking / graph router's training points), or else fitted online,
by k-means on the first `cluster_after` request embeddings a process sees.

Why online k-means and not fixed random directions: on the LLMRouter data the task of a prompt decides most of
which model is best (the best model per task beats the best per-prompt offline router), and k-means on a couple
of hundred static embeddings recovers much of that structure; argmax over random directions does not.
The embeddings are centred on the sample's mean first: a static (mean-of-tokens) embedding shares one large
common direction, which would otherwise dominate every cosine.

Every replica must put a request in the same cluster, so the first fit to reach the bandit state wins
(`BanditState.claim`, set-once) and every replica uses those centroids; until a process holds them (its first
`cluster_after` requests, or a restart before it reads them back) its picks use the pooled statistics only."""

from __future__ import annotations

from typing import Any

import numpy as np

CLAIM = "__clusters__"  # the bandit-state slot the centroids are claimed under (never a model name)
ITERATIONS = 25


def kmeans(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding on unit rows (cosine), k unit centroids; numpy only, a few
    milliseconds on 200 × 256, so it may run once on the event loop."""
    rng = np.random.default_rng(seed)
    k = min(k, len(points))
    centroids = [points[int(rng.integers(len(points)))]]
    for _ in range(1, k):
        distance = np.maximum(1.0 - np.max(points @ np.array(centroids).T, axis=1), 0.0)
        total = float(distance.sum())
        index = int(rng.choice(len(points), p=distance / total)) if total > 0 else int(rng.integers(len(points)))
        centroids.append(points[index])
    found = np.array(centroids)
    for _ in range(ITERATIONS):
        labels = np.argmax(points @ found.T, axis=1)
        moved = np.array([points[labels == j].sum(axis=0) if np.any(labels == j) else found[j] for j in range(k)])
        moved /= np.maximum(np.linalg.norm(moved, axis=1, keepdims=True), 1e-12)
        if np.allclose(moved, found):
            break
        found = moved
    return found


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Clusters:
    """Assigns a request embedding to one of k clusters, once the centroids are known (`cell` is None before)."""

    def __init__(self, k: int, after: int, seed: int, prior_model: Any = None) -> None:
        self.k, self.after, self.seed = k, after, seed
        self.centre_: np.ndarray | None = None
        self.centroids_: np.ndarray | None = None
        self.sample_: list[np.ndarray] = []
        self.checked_ = False  # looked for centroids another replica (or an earlier run) claimed
        found = getattr(prior_model, "centroids_", None)
        points = getattr(prior_model, "points_", None)
        if found is not None and len(found) == k:  # a `cluster` router's own
            self.centre_ = np.zeros(np.asarray(found).shape[1])
            self.centroids_ = unit_rows(np.asarray(found, dtype=np.float64))
        elif points is not None and len(points) >= k:  # knn, sw_ranking, graph: the same fit in every replica
            points = np.asarray(points, dtype=np.float64)
            self.centre_ = points.mean(axis=0)
            self.centroids_ = kmeans(unit_rows(points - self.centre_), k, seed)

    def cell(self, vector: np.ndarray) -> int | None:
        """The cluster of this embedding; before the centroids are known, None (and the embedding is kept for
        the fit)."""
        if self.centroids_ is None:
            if len(self.sample_) < self.after:
                self.sample_.append(np.asarray(vector, dtype=np.float64))
            return None
        return int(np.argmax(self.centroids_ @ unit_rows(np.asarray(vector, dtype=np.float64) - self.centre_)))

    async def settle(self, state: Any) -> None:
        """After an update: adopt centroids claimed in the shared state, or fit and claim them once this process
        has seen `after` requests."""
        if self.centroids_ is not None:
            return
        if not self.checked_:
            self.checked_ = True
            stored = await state.claim(CLAIM, None)
            if stored is not None:
                self._adopt(stored)
                return
        if len(self.sample_) < self.after:
            return
        points = np.array(self.sample_)
        centre = points.mean(axis=0)
        fitted = kmeans(unit_rows(points - centre), self.k, self.seed)
        if len(fitted) < self.k:  # fewer distinct requests than clusters: wait for more
            return
        self._adopt(await state.claim(CLAIM, np.concatenate([centre, fitted.ravel()])))

    def _adopt(self, packed: np.ndarray) -> None:
        packed = np.asarray(packed, dtype=np.float64)
        dim = len(packed) // (self.k + 1)
        self.centre_, self.centroids_ = packed[:dim], packed[dim:].reshape(self.k, dim)
        self.sample_ = []
