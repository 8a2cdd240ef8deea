"""`mf`: RouteLLM's matrix-factorisation router (Ong et al., 2024, "RouteLLM: Learning to Route LLMs with
Preference Data"), learned from pairwise preferences and generalised from two models to N.

The paper scores model m on prompt q as δ(m, q) = w2ᵀ(v̂_m ⊙ (W1 q + b)), with v̂_m a unit-norm model embedding,
and learns from battles: P(m_a beats m_b | q) = σ(δ(m_a, q) − δ(m_b, q)), a binary cross-entropy over
(prompt, winner, loser) records. A routing table has per-model scores, not battles, so every pair of models on
every prompt becomes one battle: the higher score wins; a tie is dropped (`ties="drop"`, the default: it says
nothing about which is better) or counts as half a win each (`ties="half"`). With two models this is exactly the
paper's setting (GPT-4 vs Mixtral, a tie when both or neither are right).

For the cost knob, `predict_quality` returns each model's expected win rate against the other models,
mean_{b≠m} σ(δ(m, q) − δ(b, q)): monotone in δ(m, q) for a prompt, on [0, 1] like the scores. With two models the
values are P(strong wins) and 1 − P(strong wins), their gap 2·P − 1, so sweeping `cost_weight` sweeps RouteLLM's threshold on the
strong model's win rate.

Simplified: full-batch Adam over all pairs instead of mini-batches; the prompt embedding is turnout's encoder
(minilm-static by default) instead of OpenAI's text-embedding-3-small; Gaussian noise on the prompt embedding
while training (the paper's augmentation) is `noise` (std 0.02 on turnout's unit-norm embeddings; `noise` and `lr`
chosen by 3-fold cross-validation on the GSM8K and LLMRouter train splits, benchmarks/paper_routers_cv.py)."""

from pathlib import Path
from typing import Any, Literal

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import Adam, LearnedSelector, normalise_rows
from turnout.selection.paper_methods import check_method

METHOD = "routellm-mf-pairwise-v1"


def battles(scores: np.ndarray, ties: str = "drop") -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of models on every prompt as one battle: (row, model a, model b, P(a wins) label)."""
    n, m = scores.shape
    a, b = np.triu_indices(m, 1)
    diff = scores[:, a] - scores[:, b]
    rows = np.repeat(np.arange(n), len(a))
    a, b, diff = np.tile(a, n), np.tile(b, n), diff.ravel()
    label = (diff > 0).astype(np.float64)
    if ties == "half":
        label[diff == 0] = 0.5
        keep = np.ones(len(diff), dtype=bool)
    else:
        keep = diff != 0
    return rows[keep], a[keep], b[keep], label[keep]


def pairwise_loss(params: list[np.ndarray], x: np.ndarray, pairs: tuple[np.ndarray, ...], l2: float
                  ) -> tuple[float, list[np.ndarray]]:
    """Mean binary cross-entropy of σ(δ_a − δ_b) against the battles' labels (+ L2 on W1 and v), and its
    gradient for params = [W1, b, v, w2]."""
    w1, bias, v, w2 = params
    rows, a, b, label = pairs
    z = x @ w1 + bias  # n × dim
    norms = np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    unit = v / norms
    u = unit * w2  # m × dim: δ = z uᵀ
    delta = z @ u.T
    logit = delta[rows, a] - delta[rows, b]
    p = 1 / (1 + np.exp(-logit))
    count = max(len(rows), 1)
    eps = 1e-12
    loss = -np.sum(label * np.log(p + eps) + (1 - label) * np.log(1 - p + eps)) / count
    loss += 0.5 * l2 * (np.sum(w1 * w1) + np.sum(v * v))
    g = (p - label) / count
    grad_delta = np.zeros_like(delta)
    np.add.at(grad_delta, (rows, a), g)
    np.add.at(grad_delta, (rows, b), -g)
    grad_z = grad_delta @ u
    grad_u = grad_delta.T @ z
    grad_unit = grad_u * w2
    grad_v = (grad_unit - unit * (unit * grad_unit).sum(axis=1, keepdims=True)) / norms + l2 * v
    return float(loss), [x.T @ grad_z + l2 * w1, grad_z.sum(axis=0), grad_v, (grad_u * unit).sum(axis=0)]


@register("mf")
class MatrixFactorizationSelector(LearnedSelector):
    """RouteLLM's matrix factorisation over pairwise wins, N models (see the module's docstring)."""

    method = METHOD

    def __init__(self, *, dim: int = 128, epochs: int = 300, lr: float = 0.003, l2: float = 1e-4,
                 ties: Literal["drop", "half"] = "drop", noise: float = 0.02, seed: int = 0,
                 cost_weight: float = 0.0) -> None:
        self.dim = dim  # the paper's 128
        self.epochs = epochs
        self.lr = lr
        self.l2 = l2
        self.ties = ties
        self.noise = noise  # std of Gaussian noise added to the prompt embedding while training
        self.seed = seed
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        rng = np.random.default_rng(self.seed)
        x = x.astype(np.float64)
        d, m = x.shape[1], scores.shape[1]
        params = [rng.normal(0, 1 / np.sqrt(d), (d, self.dim)), np.zeros(self.dim),
                  rng.normal(0, 1, (m, self.dim)), rng.normal(0, 1 / np.sqrt(self.dim), self.dim)]
        pairs = battles(scores, self.ties)
        adam = Adam(params, self.lr)
        for _ in range(self.epochs if len(pairs[0]) else 0):
            noisy = x + rng.normal(0, self.noise, x.shape) if self.noise > 0 else x
            adam.update(pairwise_loss(params, noisy, pairs, self.l2)[1])
        w1, bias, v, w2 = params
        self.w1_, self.b_ = w1.astype(np.float32), bias.astype(np.float32)
        self.u_ = (normalise_rows(v) * w2).astype(np.float32)  # δ(m, q) = (W1 q + b) · u_m
        self.method_ = METHOD

    def delta(self, x: np.ndarray) -> np.ndarray:
        """RouteLLM's δ(m, q) for each prompt (rows) and model (columns)."""
        return (np.asarray(x, dtype=np.float32) @ self.w1_ + self.b_) @ self.u_.T

    def predict_quality(self, x):
        delta = self.delta(x)
        m = delta.shape[1]
        if m == 1:
            return np.full_like(delta, 0.5)
        wins = 1 / (1 + np.exp(-(delta[:, :, None] - delta[:, None, :])))  # P(row model beats column model)
        return (wins.sum(axis=2) - 0.5) / (m - 1)  # leave out the model's σ(0) = ½ against itself

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> "MatrixFactorizationSelector":
        check_method(directory, cls.name, METHOD, "the earlier pointwise fit (sigmoid(v_m · W x + b_m) on the "
                                                 "scores, before turnout learned mf from pairwise wins)")
        return super().load(directory, **overrides)  # type: ignore[return-value]
