"""Linear classifiers over sentence embeddings: trained with scikit-learn, served with numpy.

scikit-learn's predict_proba on one vector costs ~400 µs; softmax(W @ x + b) in numpy ~20 µs. So fitting uses
LogisticRegression and serving uses the exported weights. An artifact is one .npz file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from turnout.models.encoders import get_encoder


@dataclass
class LinearClassifier:
    labels: list[str]
    coef: np.ndarray  # (classes, dim); a binary model keeps one row per class too
    intercept: np.ndarray
    encoder: str
    meta: dict[str, Any] = field(default_factory=dict)

    def proba(self, vector: np.ndarray) -> np.ndarray:
        logits = self.coef @ vector + self.intercept
        logits -= logits.max()
        exp = np.exp(logits)
        return exp / exp.sum()

    def predict(self, vector: np.ndarray) -> tuple[str, float, dict[str, float]]:
        p = self.proba(vector)
        best = int(np.argmax(p))
        return self.labels[best], float(p[best]), {label: float(x) for label, x in zip(self.labels, p)}

    def save(self, path: str | Path) -> None:
        np.savez_compressed(path, coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32),
                            labels=np.array(self.labels), encoder=np.array(self.encoder),
                            meta=np.array(json.dumps(self.meta)))

    @classmethod
    def load(cls, path: str | Path) -> "LinearClassifier":
        with np.load(path, allow_pickle=False) as data:
            return cls([str(x) for x in data["labels"]], data["coef"].astype(np.float32),
                       data["intercept"].astype(np.float32), str(data["encoder"]), json.loads(str(data["meta"])))

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], *, encoder: str = "minilm-static", C: float = 4.0,
            class_weight: str | None = "balanced", meta: dict[str, Any] | None = None) -> "LinearClassifier":
        from sklearn.linear_model import LogisticRegression

        x = get_encoder(encoder).encode(list(texts))
        model = LogisticRegression(C=C, max_iter=2000, class_weight=class_weight)
        model.fit(x, list(labels))
        coef, intercept = model.coef_, model.intercept_
        if coef.shape[0] == 1:  # binary: softmax over [-z/2, z/2] equals sigmoid(z)
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
        return cls([str(c) for c in model.classes_], coef, intercept, encoder, meta or {})


@cache
def load_classifier(artifact: str) -> LinearClassifier:
    """'builtin:NAME' is a classifier shipped in turnout/models/data; anything else is a file path."""
    if artifact.startswith("builtin:"):
        name = artifact.split(":", 1)[1]
        return LinearClassifier.load(str(resources.files("turnout.models").joinpath(f"data/{name}.npz")))
    return LinearClassifier.load(Path(artifact))
