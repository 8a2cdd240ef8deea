"""Selectors that learn from pairwise outcomes (who beat whom on a prompt) or from which model was best:
global Elo / Bradley-Terry, similarity-weighted Bradley-Terry (RouteLLM's sw_ranking), per-model success
classifiers on the embedding (RouteLLM's BERT router idea, on CPU) and per-model linear SVMs."""

from __future__ import annotations

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import LearnedSelector, normalise_rows


def bradley_terry(wins: np.ndarray, iterations: int = 50) -> np.ndarray:
    """Strengths p (summing to 1) from a matrix of (weighted) wins[a, b], by Hunter's MM algorithm."""
    m = len(wins)
    games = wins + wins.T
    p = np.full(m, 1.0 / m)
    for _ in range(iterations):
        denominator = (games / np.maximum(p[:, None] + p[None, :], 1e-12)).sum(axis=1)
        p = np.maximum(wins.sum(axis=1), 1e-6) / np.maximum(denominator, 1e-12)
        p /= p.sum()
    return p


def pairwise_wins(scores: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """wins[a, b] = Σ_prompts weight · (1 if a scored higher, ½ if tied) — ties count half each way."""
    weights = np.ones(len(scores)) if weights is None else weights
    a = scores[:, :, None]
    b = scores[:, None, :]
    outcome = (a > b) + 0.5 * (a == b)
    wins = np.einsum("n,nab->ab", weights, outcome)
    np.fill_diagonal(wins, 0)
    return wins


def per_model_linear(x: np.ndarray, scores: np.ndarray, make, constant: float) -> tuple[np.ndarray, np.ndarray]:
    """One linear model per model of 'answered well (score ≥ 0.5)': weights (models × dim) and biases. A model
    that is always (never) right gets a constant ±`constant` instead, since there is nothing to separate."""
    weights, biases = [], []
    for j in range(scores.shape[1]):
        good = scores[:, j] >= 0.5
        if good.all() or not good.any():
            weights.append(np.zeros(x.shape[1]))
            biases.append(constant if good.all() else -constant)
            continue
        model = make().fit(x, good)
        weights.append(model.coef_[0])
        biases.append(model.intercept_[0])
    return np.array(weights, dtype=np.float32), np.array(biases, dtype=np.float32)


@register("elo")
class EloSelector(LearnedSelector):
    """One global rating per model (Bradley-Terry fit of all pairwise outcomes): no per-prompt routing, the
    strongest model unless cost says otherwise."""

    def __init__(self, *, cost_weight: float = 0.0) -> None:
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        strength = bradley_terry(pairwise_wins(scores))
        self.rating_ = (strength / strength.max()).astype(np.float32)

    def predict_quality(self, x):
        return np.tile(self.rating_, (len(x), 1))


@register("sw_ranking")
class SimilarityWeightedRankingSelector(LearnedSelector):
    """RouteLLM's similarity-weighted ranking: a Bradley-Terry fit in which each training prompt's outcomes
    weigh exp(temperature × cosine similarity) to the request."""

    def __init__(self, *, temperature: float = 10.0, neighbours: int = 256, cost_weight: float = 0.0) -> None:
        self.temperature = temperature
        self.neighbours = neighbours  # far prompts weigh exp(-temperature·distance): only the nearest matter
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        self.points_ = normalise_rows(x).astype(np.float32)
        a, b = scores[:, :, None], scores[:, None, :]
        self.outcomes_ = ((a > b) + 0.5 * (a == b)).astype(np.float32)  # (n, m, m)

    def predict_quality(self, x):
        out = []
        k = min(self.neighbours, len(self.points_))
        for sims in normalise_rows(x).astype(np.float32) @ self.points_.T:
            nearest = np.argpartition(-sims, k - 1)[:k]
            weights = np.exp(self.temperature * (sims[nearest] - sims[nearest].max()))
            wins = np.einsum("n,nab->ab", weights, self.outcomes_[nearest])
            np.fill_diagonal(wins, 0)
            strength = bradley_terry(wins, iterations=12)  # enough to rank 10 models; each costs ~30 µs
            out.append(strength / strength.max())
        return np.array(out, dtype=np.float32)


@register("classifier")
class SuccessClassifierSelector(LearnedSelector):
    """RouteLLM's classifier router generalised to N models: one logistic regression per model on the
    embedding, P(the model answers well, score ≥ 0.5). Fitted by scikit-learn, served by numpy."""

    def __init__(self, *, C: float = 1.0, cost_weight: float = 0.0) -> None:
        self.C = C
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        from sklearn.linear_model import LogisticRegression

        self.w_, self.b_ = per_model_linear(x, scores, lambda: LogisticRegression(C=self.C, max_iter=2000), 4.0)

    def predict_quality(self, x):
        return 1 / (1 + np.exp(-(x @ self.w_.T + self.b_)))


def platt_sigmoid(margins: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt (1999): P(positive | margin f) = sigmoid(a·f + c), fitted by maximum likelihood on held-out margins
    against his smoothed targets (N₊ + 1)/(N₊ + 2) and 1/(N₋ + 2), which keep a separable fold from pushing
    the probabilities to 0 and 1."""
    from scipy.optimize import minimize

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    target = np.where(positive, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
        z = params[0] * margins + params[1]
        p = 1 / (1 + np.exp(-z))
        nll = float(np.sum(np.logaddexp(0, z) - target * z))  # −Σ t·log p + (1 − t)·log(1 − p)
        return nll, np.array([np.dot(p - target, margins), np.sum(p - target)])

    start = np.array([1.0, np.log((n_pos + 1) / (n_neg + 1))])
    a, c = minimize(loss, start, jac=True, method="L-BFGS-B").x
    return float(a), float(c)


@register("svm")
class SVMSelector(LearnedSelector):
    """One linear SVM per model (did it answer well, score ≥ 0.5?), its margin turned into a probability by
    Platt scaling (`platt_sigmoid` on 5-fold cross-validated margins). Raw margins of a class-balanced SVM are
    not comparable across models (each is centred on its own 50 % line, whatever the model's accuracy), so
    without it `cost_weight` ≥ 0 could not reach the strong model's quality."""

    def __init__(self, *, C: float = 0.5, seed: int = 0, cost_weight: float = 0.0) -> None:
        self.C = C
        self.seed = seed
        self.cost_weight = cost_weight

    def _fit(self, x, scores, costs):
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.svm import LinearSVC

        def svm() -> LinearSVC:
            return LinearSVC(C=self.C, class_weight="balanced", max_iter=5000, random_state=self.seed)

        w, b = per_model_linear(x, scores, svm, 4.0)
        for j in range(scores.shape[1]):
            good = scores[:, j] >= 0.5
            folds = min(5, int(good.sum()), int((~good).sum()))
            if folds < 2:  # constant, or too few of one class to cross-validate: keep the margin as it is
                continue
            cv = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
            a, c = platt_sigmoid(cross_val_predict(svm(), x, good, cv=cv, method="decision_function"), good)
            w[j], b[j] = a * w[j], a * b[j] + c
        self.w_, self.b_ = w, b

    def predict_quality(self, x):
        return 1 / (1 + np.exp(-(x @ self.w_.T + self.b_)))
