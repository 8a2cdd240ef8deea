"""`mf`: matrix factorisation of prompt x model quality (after RouteLLM's matrix-factorisation router)."""

from __future__ import annotations

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import Adam, LearnedSelector


@register("mf")
class MatrixFactorizationSelector(LearnedSelector):
    """RouteLLM's matrix factorisation generalised to N models: P(model m answers prompt x well) =
    sigmoid(v_m · (W x) + b_m), fitted by gradient descent on the cross-entropy with the scores."""

    def __init__(self, *, dim: int = 64, epochs: int = 300, lr: float = 0.05, l2: float = 1e-4, seed: int = 0,
                 cost_weight: float = 0.0) -> None:
        self.dim = dim
        self.epochs = epochs
        self.lr = lr
        self.l2 = l2
        self.seed = seed
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        rng = np.random.default_rng(self.seed)
        n, d = x.shape
        m = scores.shape[1]
        w = rng.normal(0, 0.1, (d, self.dim))
        v = rng.normal(0, 0.1, (m, self.dim))
        b = np.log(np.clip(scores.mean(0), 1e-3, 1 - 1e-3) / np.clip(1 - scores.mean(0), 1e-3, 1))
        adam = Adam([w, v, b], self.lr)
        for _ in range(self.epochs):
            z = x @ w
            p = 1 / (1 + np.exp(-(z @ v.T + b)))
            g = (p - scores) / n
            adam.update([x.T @ (g @ v) + self.l2 * w, g.T @ z + self.l2 * v, g.sum(axis=0)])
        self.w_, self.v_, self.b_ = w.astype(np.float32), v.astype(np.float32), b.astype(np.float32)

    def predict_quality(self, x):
        return 1 / (1 + np.exp(-((x @ self.w_) @ self.v_.T + self.b_)))
