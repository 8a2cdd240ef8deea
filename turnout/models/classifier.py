"""Linear classifiers over sentence embeddings and, optionally, hashed n-gram TF-IDF: trained with scikit-learn,
served with numpy.

scikit-learn's predict_proba on one vector costs ~400 µs; softmax(W @ x + b) in numpy ~20 µs. So fitting uses
LogisticRegression and serving uses the exported weights. An artifact is one .npz file; files written before
the n-gram features and class groups existed load unchanged (embedding only, one class per label).

A model may learn finer classes than it reports (the domain model learns each task and MMLU subject, then sums
their probabilities per domain): `groups[i]` is the label of class i."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from turnout.models.encoders import get_encoder
from turnout.models.text_features import tfidf, tfidf_matrix


@dataclass
class LinearClassifier:
    labels: list[str]
    coef: np.ndarray  # (classes, dim); a binary model keeps one row per class too
    intercept: np.ndarray
    encoder: str
    meta: dict[str, Any] = field(default_factory=dict)
    ngram_idf: np.ndarray | None = None  # (buckets,): present when the model reads hashed n-grams too
    ngram_coef: np.ndarray | None = None  # (classes, buckets), column-major (see __post_init__)
    groups: np.ndarray | None = None  # (classes,) index into labels; None: class i is labels[i]

    def __post_init__(self) -> None:
        if self.ngram_coef is not None:
            # column-major: a request gathers the columns of its ~100 buckets, each then one contiguous read
            # (row-major, each column is `classes` scattered reads: 10x slower); the same numbers either way
            self.ngram_coef = np.asfortranarray(self.ngram_coef)

    @property
    def uses_text(self) -> bool:
        return self.ngram_idf is not None

    def _to_labels(self, p: np.ndarray) -> np.ndarray:
        if self.groups is None:
            return p
        if p.ndim == 1:  # the request path: one bincount, not a Python loop over the classes
            return np.bincount(self.groups, weights=p, minlength=len(self.labels)).astype(p.dtype)
        out = np.zeros(p.shape[:-1] + (len(self.labels),), dtype=p.dtype)
        np.add.at(out.T, self.groups, p.T)
        return out

    def proba(self, vector: np.ndarray, text: str | None = None) -> np.ndarray:
        # the request path, one vector: ufuncs and array methods called directly (np.max, ndarray.sum and
        # friends are Python wrappers around the same reductions: on a few dozen numbers they cost more than the
        # arithmetic); the same operations in the same order as `logits - max`, `exp / exp.sum()`
        logits = self.coef @ vector
        logits += self.intercept
        if self.ngram_idf is not None and self.ngram_coef is not None:
            if text is None:
                raise ValueError("this classifier reads the text's n-grams too: pass the text")
            index, values = tfidf(text, self.ngram_idf)
            logits += np.dot(self.ngram_coef[:, index], values)
        logits -= np.maximum.reduce(logits)
        exp = np.exp(logits, out=logits)
        exp /= np.add.reduce(exp)
        return self._to_labels(exp)

    def predict(self, vector: np.ndarray, text: str | None = None) -> tuple[str, float, dict[str, float]]:
        p = self.proba(vector, text)
        best = int(p.argmax())
        values = p.tolist()
        return self.labels[best], values[best], dict(zip(self.labels, values))

    def proba_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(texts, labels) probabilities, batched: what evaluation uses; the same numbers as `proba`."""
        logits = get_encoder(self.encoder).encode(list(texts)) @ self.coef.T + self.intercept
        if self.ngram_idf is not None and self.ngram_coef is not None:
            logits = logits + np.asarray(tfidf_matrix(list(texts), self.ngram_idf) @ self.ngram_coef.T)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return self._to_labels(p / p.sum(axis=1, keepdims=True))

    def save(self, path: str | Path) -> None:
        extra = {}
        if self.ngram_idf is not None and self.ngram_coef is not None:
            extra = {"ngram_idf": self.ngram_idf.astype(np.float32), "ngram_coef": self.ngram_coef.astype(np.float16)}
        if self.groups is not None:
            extra["groups"] = self.groups.astype(np.int16)
        np.savez_compressed(path, coef=self.coef.astype(np.float32), intercept=self.intercept.astype(np.float32),
                            labels=np.array(self.labels), encoder=np.array(self.encoder),
                            meta=np.array(json.dumps(self.meta)), **extra)

    @classmethod
    def load(cls, path: str | Path) -> LinearClassifier:
        with np.load(path, allow_pickle=False) as data:
            optional = {k: np.asarray(data[k], dtype=np.float32) for k in ("ngram_idf", "ngram_coef") if k in data}
            if "groups" in data:
                optional["groups"] = data["groups"].astype(np.int64)
            return cls([str(x) for x in data["labels"]], data["coef"].astype(np.float32),
                       data["intercept"].astype(np.float32), str(data["encoder"]), json.loads(str(data["meta"])),
                       **optional)

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], *, encoder: str = "minilm-static", C: float = 4.0,
            class_weight: str | None = "balanced", meta: dict[str, Any] | None = None) -> LinearClassifier:
        """The embedding-only model (`turnout train-classifier`); scripts/train_signal_classifiers.py fits the
        shipped ones with n-grams too (turnout.models.fit_text_classifier)."""
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
