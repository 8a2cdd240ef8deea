"""`routerdc`: RouterDC (Chen et al., NeurIPS 2024, "RouterDC: Query-Based Router by Dual Contrastive
Learning"): a query encoder and one learned embedding per model, trained with both of the paper's contrastive
losses (contrastive_loss.py): sample–LLM (a query is pulled towards its `top_k` best models and pushed from its
`last_k` worst) and sample–sample (queries of the same k-means cluster of the embedding space pulled together,
`hard` queries of other clusters pushed away), loss = sample–LLM + `sample_weight` × sample–sample.

The paper's hyper-parameters where they carry over: top_k = last_k = 3 (at most half the models each),
temperature 1, λ = 1, H = 3 negatives, N = 5 clusters, mini-batches of 64, 1,000 steps. The learning rate
(0.002, of the projection, not the paper's of mDeBERTa) was chosen by 3-fold cross-validation on the GSM8K and
LLMRouter train splits (benchmarks/paper_routers_cv.py).

Simplified: the encoder is frozen (turnout's sentence embedding, minilm-static by default) and a linear
projection to `dim` dimensions is learned in place of fine-tuning mDeBERTa (numpy, Adam, no torch). The paper
routes to the model of highest similarity; so that `cost_weight` can trade quality for cost on the score scale,
each model's similarity is mapped to its score by a per-model linear fit on the training data (a non-negative
slope, so the order of similarities per model is kept)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from turnout.selection.base import register
from turnout.selection.contrastive_loss import (
    contrastive_masks,
    dual_contrastive_loss,
    sample_pairs,
)
from turnout.selection.learned import Adam, LearnedSelector, normalise_rows
from turnout.selection.paper_methods import check_method

METHOD = "routerdc-dual-contrastive-v1"


def query_clusters(x: np.ndarray, n_clusters: int, seed: int) -> np.ndarray:
    """k-means clusters of the (normalised) training queries, the sample–sample loss's positives."""
    from sklearn.cluster import KMeans

    k = max(1, min(n_clusters, len(x)))
    return KMeans(n_clusters=k, random_state=seed, n_init=4).fit(normalise_rows(x)).labels_


@register("routerdc")
class RouterDCSelector(LearnedSelector):
    """RouterDC's dual contrastive learning over a frozen encoder (see the module's docstring)."""

    method = METHOD

    def __init__(self, *, dim: int = 128, temperature: float = 1.0, top_k: int = 3, last_k: int = 3,
                 sample_weight: float = 1.0, hard: int = 3, n_clusters: int = 5, batch_size: int = 64,
                 steps: int = 1000, lr: float = 0.002, l2: float = 0.0, seed: int = 0,
                 cost_weight: float = 0.0) -> None:
        self.dim = dim
        self.temperature = temperature
        self.top_k = top_k
        self.last_k = last_k
        self.sample_weight = sample_weight  # λ: 0 trains with the sample–LLM loss alone
        self.hard = hard  # H: negatives of the sample–sample loss
        self.n_clusters = n_clusters
        self.batch_size = batch_size
        self.steps = steps
        self.lr = lr
        self.l2 = l2
        self.seed = seed
        self.cost_weight = cost_weight

    def _similarities(self, x: np.ndarray) -> np.ndarray:
        return normalise_rows(np.asarray(x, dtype=np.float32) @ self.w_) @ normalise_rows(self.k_).T

    def _fit(self, x, scores, costs):
        rng = np.random.default_rng(self.seed)
        clusters = query_clusters(x, self.n_clusters, self.seed)
        xs = x.astype(np.float64)
        w = rng.normal(0, 1 / np.sqrt(x.shape[1]), (x.shape[1], self.dim))
        k = rng.normal(0, 0.78, (scores.shape[1], self.dim))  # the paper's initialisation of the LLM embeddings
        adam = Adam([w, k], self.lr)
        order, at = rng.permutation(len(xs)), 0
        for _ in range(self.steps if len(xs) else 0):
            if at >= len(order):
                order, at = rng.permutation(len(xs)), 0
            batch = order[at:at + self.batch_size]
            at += self.batch_size
            pair_pos, pair_neg = sample_pairs(clusters[batch], self.hard, rng)
            positive, negative = contrastive_masks(scores[batch], self.top_k, self.last_k, rng)  # ties: at random
            _, _, grad_w, grad_k = dual_contrastive_loss(w, k, xs[batch], positive, negative,
                                                         pair_pos, pair_neg, self.temperature, self.sample_weight)
            adam.update([grad_w + self.l2 * w, grad_k + self.l2 * k])
        self.w_, self.k_ = w.astype(np.float32), k.astype(np.float32)
        self.clusters_ = clusters.astype(np.int32)
        self._calibrate(self._similarities(x), scores)
        self.method_ = METHOD

    def _calibrate(self, sims: np.ndarray, scores: np.ndarray) -> None:
        """Per-model linear map from similarity to score, so the cost knob weighs quality on the score scale."""
        self.scale_ = np.zeros(scores.shape[1], dtype=np.float32)
        self.offset_ = scores.mean(axis=0).astype(np.float32)
        for j in range(scores.shape[1]):
            if sims[:, j].std() > 1e-6:
                slope, intercept = np.polyfit(sims[:, j], scores[:, j], 1)
                if slope > 0:
                    self.scale_[j], self.offset_[j] = slope, intercept

    def predict_quality(self, x):
        return self._similarities(x) * self.scale_ + self.offset_

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> RouterDCSelector:
        check_method(directory, cls.name, METHOD, "the earlier sample–LLM-only fit (before turnout's routerdc "
                                                 "added RouterDC's sample–sample loss)")
        return super().load(directory, **overrides)  # type: ignore[return-value]
