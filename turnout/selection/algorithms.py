"""Learned selection algorithms (see learned.py for the shared contract). Each is a few lines of numpy or
scikit-learn for fitting, and plain numpy for serving (no scikit-learn call on the request path)."""

from __future__ import annotations

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import Adam, LearnedSelector, normalise_rows


@register("best_single")
class BestSingleSelector(LearnedSelector):
    """The model with the best mean score on the training data, whatever the prompt."""

    def __init__(self, *, cost_weight: float = 0.0) -> None:
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        self.mean_quality_ = scores.mean(axis=0)

    def predict_quality(self, x):
        return np.tile(self.mean_quality_, (len(x), 1))


@register("knn")
class KNNSelector(LearnedSelector):
    """Mean score of each model on the k most similar training prompts (cosine)."""

    def __init__(self, *, k: int = 20, cost_weight: float = 0.0) -> None:
        self.k = k
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        self.points_ = normalise_rows(x).astype(np.float32)
        self.scores_ = scores.astype(np.float32)

    def predict_quality(self, x):
        sims = normalise_rows(x).astype(np.float32) @ self.points_.T
        k = min(self.k, len(self.points_))
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return self.scores_[nearest].mean(axis=1)


@register("cluster")
class ClusterSelector(LearnedSelector):
    """k-means clusters of the training prompts; each model's mean score per cluster (GreenServ-style)."""

    def __init__(self, *, n_clusters: int = 24, seed: int = 0, cost_weight: float = 0.0) -> None:
        self.n_clusters = n_clusters
        self.seed = seed
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        from sklearn.cluster import KMeans

        km = KMeans(n_clusters=min(self.n_clusters, len(x)), random_state=self.seed, n_init=4).fit(normalise_rows(x))
        self.centroids_ = km.cluster_centers_.astype(np.float32)
        prior = scores.mean(axis=0)
        # a little shrinkage to the global mean keeps small clusters from over-claiming
        self.quality_ = np.stack([(scores[km.labels_ == c].sum(axis=0) + 5 * prior) / ((km.labels_ == c).sum() + 5)
                                  for c in range(len(self.centroids_))])

    def predict_quality(self, x):
        return self.quality_[np.argmax(normalise_rows(x) @ self.centroids_.T, axis=1)]


@register("mlp")
class MLPSelector(LearnedSelector):
    """A small multi-output MLP from the embedding to each model's score (fitted by scikit-learn)."""

    def __init__(self, *, hidden: int = 128, alpha: float = 1e-3, max_iter: int = 300, seed: int = 0,
                 cost_weight: float = 0.0) -> None:
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.seed = seed
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        from sklearn.neural_network import MLPRegressor

        net = MLPRegressor(hidden_layer_sizes=(self.hidden,), alpha=self.alpha, max_iter=self.max_iter,
                           early_stopping=len(x) >= 200, random_state=self.seed).fit(x, scores)
        self.w1_, self.w2_ = net.coefs_[0].astype(np.float32), net.coefs_[1].astype(np.float32)
        self.b1_, self.b2_ = net.intercepts_[0].astype(np.float32), net.intercepts_[1].astype(np.float32)

    def predict_quality(self, x):
        hidden = np.maximum(x @ self.w1_ + self.b1_, 0)
        return hidden @ self.w2_ + self.b2_
