"""A feature-rich ensemble router: cross-fitted MLPs over the prompt embedding, the prompt's shape (length,
lines, digits, code characters, answer options), its inferred task and a softmax over the embedding weights of
the shipped domain and complexity classifiers (their embedding part only: the domain model's 70 task/subject
classes unsummed, without its n-gram features or calibration, so not the `domain` signal's probabilities);
per-model isotonic calibration and a cost knob chosen by cross-validation on the
training table only.

Everything it reads is computed from the request's last user message and its embedding, on the server as in
training: the task is inferred (nearest task centroid of the training prompts), never taken from a label; the
domain and complexity weights are copied into the artifact at fit time, so a retrained shipped classifier does
not change what an existing artifact sees."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from turnout.selection.base import register
from turnout.selection.learned import LearnedSelector, normalise_rows

OPTIONS = re.compile(r"(?m)^\s*\(?[A-Ea-e][).:]\s")
CODE_CHARS = "{}[]();=<>_#"
SHAPE = ("log characters", "log words", "log lines", "digit share", "code-character share", "upper-case share",
         "question marks", "answer options")
SHAPE_LIMIT = 8000  # characters read for the shape features: bounded cost on a long prompt
TASK_TEMPERATURE = 20.0  # softmax over cosine similarity to each task's centroid


def prompt_shape(texts: Sequence[str]) -> np.ndarray:
    """The SHAPE features of each text (n × 8), before standardisation; str.count keeps it ~10 µs a prompt."""
    rows = []
    for text in texts:
        t = text[:SHAPE_LIMIT]
        n = max(len(t), 1)
        rows.append([np.log1p(len(text)), np.log1p(len(t.split())), np.log1p(t.count("\n")),
                     sum(map(t.count, "0123456789")) / n, sum(map(t.count, CODE_CHARS)) / n,
                     sum(1 for c in t if "A" <= c <= "Z") / n, min(t.count("?"), 5), len(OPTIONS.findall(t))])
    return np.asarray(rows, dtype=np.float32).reshape(len(texts), len(SHAPE))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _relu_mlp(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


@register("ensemble")
class FeatureEnsembleSelector(LearnedSelector):
    """`members` MLPs, member k fitted on all training prompts but fold k (cross-fitting), averaged when
    serving. Their out-of-fold predictions calibrate each model's quality (isotonic, `calibrate`) and, when
    `target_quality` is set, choose `cost_weight`: the cheapest knob setting at which the out-of-fold routing
    keeps `target_quality` × the best single model's mean training quality."""

    def __init__(self, *, members: int = 5, hidden: int = 128, alpha: float = 1e-3, max_iter: int = 300,
                 shape_features: bool = True, task_features: bool = False, signal_features: bool = True,
                 calibrate: bool = True, target_quality: float | None = None, seed: int = 0,
                 cost_weight: float = 0.0) -> None:
        self.members = members
        self.hidden = hidden
        self.alpha = alpha
        self.max_iter = max_iter
        self.shape_features = shape_features
        self.task_features = task_features
        self.signal_features = signal_features
        self.calibrate = calibrate
        self.target_quality = target_quality
        self.seed = seed
        self.cost_weight = cost_weight

    # ----- features --------------------------------------------------------------------------------------
    def features(self, prompts: Sequence[str] | None, x: np.ndarray) -> np.ndarray:
        """Embedding | standardised shape | task probabilities | softmaxes over the domain and complexity
        classifiers' embedding weights (fixed at fit time). Without
        prompts (predict_quality on bare embeddings) the shape features sit at their training mean."""
        x = np.asarray(x, dtype=np.float32)
        parts = [x]
        if self.shape_features:
            shape = (np.zeros((len(x), len(SHAPE)), np.float32) if prompts is None
                     else (prompt_shape(prompts) - self.shape_mean_) / self.shape_scale_)
            parts.append(shape)
        if getattr(self, "task_centroids_", np.zeros((0, 0))).size:
            parts.append(_softmax(TASK_TEMPERATURE * normalise_rows(x) @ self.task_centroids_.T))
        if self.signal_features:
            parts.append(_softmax(x @ self.domain_w_.T + self.domain_b_))
            parts.append(_softmax(x @ self.complexity_w_.T + self.complexity_b_)[:, 1:])
        return np.hstack(parts).astype(np.float32)

    def _fit_features(self, prompts: Sequence[str], tasks: Sequence[str], x: np.ndarray) -> None:
        shape = prompt_shape(prompts)
        self.shape_mean_ = shape.mean(axis=0)
        spread = shape.std(axis=0)
        # a feature constant in training (no answer options in GSM8K) keeps unit scale: dividing by ~0 would
        # turn the first prompt that has one into a value of millions
        self.shape_scale_ = np.where(spread > 1e-3, spread, 1.0).astype(np.float32)
        names = sorted(set(tasks))
        if self.task_features and len(names) > 1:
            unit, labels = normalise_rows(x), np.asarray(tasks)
            self.task_centroids_ = normalise_rows(np.stack([unit[labels == t].mean(axis=0) for t in names]))
            self.task_names_ = names
        else:
            self.task_centroids_ = np.zeros((0, x.shape[1]), np.float32)
        if self.signal_features:
            from turnout.models.classifier import load_classifier

            for name in ("domain", "complexity"):
                model = load_classifier(f"builtin:{name}")
                if model.encoder != self.encoder or model.coef.shape[1] != x.shape[1]:
                    raise ValueError(f"signal_features: the shipped {name} classifier reads {model.encoder} "
                                     f"({model.coef.shape[1]}-d), this router {self.encoder}; set signal_features: false")
                setattr(self, f"{name}_w_", model.coef.astype(np.float32))
                setattr(self, f"{name}_b_", model.intercept.astype(np.float32))

    # ----- fitting ----------------------------------------------------------------------------------------
    def fit(self, table: Any, x: np.ndarray | None = None) -> FeatureEnsembleSelector:
        from turnout.models.encoders import get_encoder

        if x is None:
            x = get_encoder(self.encoder).encode(table.prompts)
        if self.target_quality is not None and not 0 < self.target_quality <= 2:
            raise ValueError(f"target_quality: a share of the best model's quality in (0, 2], got {self.target_quality}")
        x = np.asarray(x, dtype=np.float32)
        self.models_ = list(table.models)
        self.fingerprint_ = table.fingerprint()
        self._fit_features(table.prompts, table.tasks, x)
        features = self.features(table.prompts, x)
        scores, costs = np.asarray(table.scores, float), np.asarray(table.costs, float)
        out_of_fold = self._fit_members(features, scores)
        self._fit_calibration(out_of_fold, scores)
        if self.target_quality is not None:
            self.cost_weight = self._knob_for(self._calibrated(out_of_fold), scores, costs)
        return self

    def _fit(self, x, scores, costs):  # the base contract; fit above passes the prompts as well
        raise NotImplementedError("FeatureEnsembleSelector.fit reads the prompts; call fit(table)")

    def _fit_members(self, features: np.ndarray, scores: np.ndarray) -> np.ndarray:
        from sklearn.neural_network import MLPRegressor

        n, k = len(features), max(1, self.members)
        folds = np.random.default_rng(self.seed).permutation(n) % k if k > 1 and n >= 2 * k else np.full(n, -1)
        out_of_fold = np.zeros_like(scores)
        weights: list[list[np.ndarray]] = [[], [], [], []]
        for member in range(k):
            train = folds != member
            net = MLPRegressor(hidden_layer_sizes=(self.hidden,), alpha=self.alpha, max_iter=self.max_iter,
                               early_stopping=int(train.sum()) >= 200, random_state=self.seed + member)
            net.fit(features[train], scores[train])
            params = (net.coefs_[0], net.intercepts_[0], net.coefs_[1], net.intercepts_[1])
            for store, value in zip(weights, params):
                store.append(np.asarray(value, np.float32))
            if (~train).any():
                out_of_fold[~train] = _relu_mlp(features[~train], *params)
        if not (folds >= 0).any():  # too few prompts to cross-fit: calibrate on the fitted predictions
            out_of_fold = self._raw(features, weights)
        self.w1_, self.b1_, self.w2_, self.b2_ = (np.stack(w) for w in weights)
        return out_of_fold

    @staticmethod
    def _raw(features: np.ndarray, weights: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        return np.mean([_relu_mlp(features, *params) for params in zip(*weights)], axis=0)

    def _fit_calibration(self, predicted: np.ndarray, scores: np.ndarray, knots: int = 32) -> None:
        """Per model, an isotonic map from predicted to observed quality, stored as `knots` points (np.interp
        serves it); identity where calibration is off or a model's predictions do not vary."""
        from sklearn.isotonic import IsotonicRegression

        grid = np.zeros((scores.shape[1], knots), np.float32)
        value = np.zeros_like(grid)
        for j in range(scores.shape[1]):
            lo, hi = float(predicted[:, j].min()), float(predicted[:, j].max())
            grid[j] = np.linspace(lo, hi if hi > lo else lo + 1.0, knots)
            value[j] = grid[j]
            if self.calibrate and hi > lo:
                iso = IsotonicRegression(out_of_bounds="clip").fit(predicted[:, j], scores[:, j])
                # half isotonic, half identity: keeps the order inside the isotonic's flat steps
                value[j] = 0.5 * iso.predict(grid[j]) + 0.5 * np.clip(grid[j], scores[:, j].min(), scores[:, j].max())
        self.calibration_x_, self.calibration_y_ = grid, value

    def _calibrated(self, predicted: np.ndarray) -> np.ndarray:
        """The isotonic maps; beyond the range they were fitted on (prompts unlike the training ones) they go on
        with the identity half's slope instead of going flat, so such prompts are not all given one value."""
        out = []
        for j in range(predicted.shape[1]):
            grid, p = self.calibration_x_[j], predicted[:, j]
            out.append(np.interp(p, grid, self.calibration_y_[j]) + 0.5 * (p - np.clip(p, grid[0], grid[-1])))
        return np.column_stack(out).astype(np.float32) if out else np.zeros((len(predicted), 0), np.float32)

    def _knob_for(self, predicted: np.ndarray, scores: np.ndarray, costs: np.ndarray) -> float:
        """The cost_weight (over the weights a server accepts) whose routing of the training prompts, on
        out-of-fold predictions, keeps target_quality of the best model's quality at the least mean cost."""
        from turnout.eval.metrics import KNOB_GRID

        rows, floor = np.arange(len(scores)), float(self.target_quality) * float(scores.mean(axis=0).max())
        normalised = costs / np.maximum(costs.max(axis=1, keepdims=True), 1e-12)
        best: tuple[float, float] = (np.inf, 0.0)
        for knob in KNOB_GRID[:-1]:  # the last setting is "always the cheapest"
            choice = np.argmax(predicted - knob * normalised, axis=1)
            if scores[rows, choice].mean() >= floor:
                best = min(best, (float(costs[rows, choice].mean()), float(knob)))
        return best[1]

    # ----- serving ----------------------------------------------------------------------------------------
    def predict(self, prompts: Sequence[str] | None, x: np.ndarray) -> np.ndarray:
        raw = self._raw(self.features(prompts, x), (self.w1_, self.b1_, self.w2_, self.b2_))
        return self._calibrated(raw)

    def predict_quality(self, x):
        return self.predict(None, x)
