"""RouterDC (Chen et al., 2024): dual contrastive learning of a query projection and one embedding per model,
so that a prompt lands near the models that answer it well. On CPU: the sentence encoder stays frozen and a
linear projection is learned in its place (numpy, full-batch Adam).

Loss (the paper's sample-LLM contrastive loss): for each prompt, the `top_k` best-scoring models are positives
and the `top_k` worst are negatives; each positive is pulled above the negatives with a temperature-scaled
InfoNCE on cosine similarities. Rows where every model scored the same teach nothing and are skipped."""

from __future__ import annotations

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import Adam, LearnedSelector, normalise_rows


def _contrastive_masks(scores: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative (prompt, model) masks: the top_k best and top_k worst of each row, a positive
    strictly better than the row's worst and a negative strictly worse than its best."""
    n, m = scores.shape
    k = max(1, min(top_k, m // 2))
    rank = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1)
    positive = (rank < k) & (scores > scores.min(axis=1, keepdims=True))
    negative = (rank >= m - k) & (scores < scores.max(axis=1, keepdims=True))
    return positive, negative


def _normalise_backward(z: np.ndarray, unit: np.ndarray, grad_unit: np.ndarray) -> np.ndarray:
    """Gradient through unit = z / |z|."""
    norms = np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    return (grad_unit - unit * (unit * grad_unit).sum(axis=1, keepdims=True)) / norms


@register("routerdc")
class RouterDCSelector(LearnedSelector):
    """Contrastive query and model embeddings (RouterDC); predicted quality is each model's cosine similarity
    to the prompt, mapped to the score scale by a per-model linear fit on the training data."""

    def __init__(self, *, dim: int = 64, temperature: float = 0.2, top_k: int = 3, epochs: int = 300,
                 lr: float = 0.01, l2: float = 1e-4, seed: int = 0, cost_weight: float = 0.0) -> None:
        self.dim = dim
        self.temperature = temperature
        self.top_k = top_k
        self.epochs = epochs
        self.lr = lr
        self.l2 = l2
        self.seed = seed
        self.cost_weight = cost_weight

    def _similarities(self, x: np.ndarray, w: np.ndarray, e: np.ndarray) -> np.ndarray:
        return normalise_rows(x @ w) @ normalise_rows(e).T

    def _fit(self, x, scores, costs):
        rng = np.random.default_rng(self.seed)
        positive, negative = _contrastive_masks(scores, self.top_k)
        rows = positive.any(axis=1) & negative.any(axis=1)
        xs, pos, neg = x[rows].astype(np.float64), positive[rows], negative[rows]
        w = rng.normal(0, 1 / np.sqrt(x.shape[1]), (x.shape[1], self.dim))
        e = rng.normal(0, 1, (scores.shape[1], self.dim))
        adam = Adam([w, e], self.lr)
        pairs = max(int(pos.sum()), 1)
        for _ in range(self.epochs if len(xs) else 0):
            z = xs @ w
            q, f = normalise_rows(z), normalise_rows(e)
            s = q @ f.T / self.temperature
            ex = np.exp(s - s.max(axis=1, keepdims=True))
            negsum = (ex * neg).sum(axis=1, keepdims=True)
            denominators = ex + negsum  # for each positive k: exp(s_k) + Σ_neg exp(s_j)
            p = ex / denominators
            grad_s = np.where(pos, -(1 - p), 0.0)
            grad_s += neg * ex * (pos / denominators).sum(axis=1, keepdims=True)
            grad_s /= pairs * self.temperature
            grad_w = xs.T @ _normalise_backward(z, q, grad_s @ f) + self.l2 * w
            grad_e = _normalise_backward(e, f, grad_s.T @ q) + self.l2 * e
            adam.update([grad_w, grad_e])
        self.w_, self.e_ = w.astype(np.float32), e.astype(np.float32)
        sims = self._similarities(x, self.w_, self.e_)
        # per-model linear map from similarity to score, so the cost knob weighs quality on the score scale
        self.scale_ = np.zeros(scores.shape[1], dtype=np.float32)
        self.offset_ = scores.mean(axis=0).astype(np.float32)
        for j in range(scores.shape[1]):
            if sims[:, j].std() > 1e-6:
                slope, intercept = np.polyfit(sims[:, j], scores[:, j], 1)
                self.scale_[j], self.offset_[j] = max(slope, 0.0), intercept if slope > 0 else scores[:, j].mean()

    def predict_quality(self, x):
        return self._similarities(np.asarray(x, dtype=np.float32), self.w_, self.e_) * self.scale_ + self.offset_
