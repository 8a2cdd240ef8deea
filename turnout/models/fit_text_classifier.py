"""Fitting the shipped classifiers: logistic regression over [embedding × scale, hashed n-gram TF-IDF], the
regularisation chosen on a validation split of the training rows (never the test rows), probabilities calibrated
by temperature scaling on that split, then refitted on every training row. Training time only (scikit-learn)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import minimize_scalar

from turnout.models.classifier import LinearClassifier
from turnout.models.encoders import get_encoder
from turnout.models.text_features import fit_idf, tfidf_matrix


def validation_row(text: str, percent: int = 25) -> bool:
    """The training rows set aside to choose C and the temperature (by a hash of the text, salted apart from the
    test split's hash)."""
    return int(hashlib.sha1(("validation:" + text).encode("utf-8")).hexdigest()[:8], 16) % 100 < percent


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _features(texts: Sequence[str], encoder: str, scale: float, idf: np.ndarray) -> sparse.csr_matrix:
    dense = get_encoder(encoder).encode(list(texts)) * scale
    return sparse.hstack([sparse.csr_matrix(dense), tfidf_matrix(list(texts), idf)]).tocsr()


def _fit(texts: Sequence[str], classes: Sequence[str], *, encoder: str, scale: float, dim: int, C: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    idf = fit_idf(texts, dim)
    model = LogisticRegression(C=C, max_iter=2000, tol=1e-3, class_weight="balanced")
    model.fit(_features(texts, encoder, scale, idf), list(classes))
    return model, idf


def _export(model: Any, idf: np.ndarray, *, encoder: str, scale: float, labels: list[str] | None,
            group_of: dict[str, str] | None, temperature: float, meta: dict[str, Any]) -> LinearClassifier:
    coef, intercept = model.coef_ / temperature, model.intercept_ / temperature
    if coef.shape[0] == 1:  # binary: softmax over [-z/2, z/2] equals sigmoid(z)
        coef, intercept = np.vstack([-coef[0] / 2, coef[0] / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    dim = coef.shape[1] - len(idf)
    classes = [str(c) for c in model.classes_]
    groups = None
    if group_of is not None:
        labels = sorted(set(group_of.values()))
        groups = np.array([labels.index(group_of[c]) for c in classes])
    return LinearClassifier(labels or classes, coef[:, :dim] * scale, intercept, encoder, meta,
                            ngram_idf=idf, ngram_coef=coef[:, dim:], groups=groups)


def fit_text_classifier(texts: Sequence[str], classes: Sequence[str], *, group_of: dict[str, str] | None = None,
                        encoder: str = "minilm-static", scale: float = 2.0, dim: int = 2 ** 15,
                        Cs: Sequence[float] = (4.0, 16.0), meta: dict[str, Any] | None = None) -> LinearClassifier:
    """`classes` are what the model learns; with `group_of` (class → label) it reports labels, the sum of their
    classes' probabilities. Returns the model refitted on every row, with the chosen C and temperature and the
    validation figures in meta["selection"]."""
    val = np.array([validation_row(t) for t in texts])
    fit_texts = [t for t, v in zip(texts, val) if not v]
    fit_classes = [c for c, v in zip(classes, val) if not v]
    val_texts = [t for t, v in zip(texts, val) if v]
    val_gold = [group_of[c] if group_of else c for c, v in zip(classes, val) if v]
    tried: dict[str, float] = {}
    best: tuple[float, np.ndarray, np.ndarray, np.ndarray] | None = None
    for C in Cs:
        model, idf = _fit(fit_texts, fit_classes, encoder=encoder, scale=scale, dim=dim, C=C)
        logits = model.decision_function(_features(val_texts, encoder, scale, idf))
        if logits.ndim == 1:  # binary: one column of log-odds
            logits = np.stack([-logits / 2, logits / 2], axis=1)
        labels = sorted(set(group_of.values())) if group_of else [str(c) for c in model.classes_]
        to_label = np.array([[labels.index(group_of[str(c)] if group_of else str(c)) == j for j in range(len(labels))]
                             for c in model.classes_], dtype=float)
        gold = np.array([labels.index(g) for g in val_gold])
        accuracy = float(((_softmax(logits) @ to_label).argmax(axis=1) == gold).mean())
        tried[str(C)] = round(accuracy, 4)
        if best is None or accuracy > tried[str(best[0])]:
            best = (C, logits, to_label, gold)
    assert best is not None
    C, logits, to_label, gold = best

    def nll(t: float) -> float:  # temperature scaling (Guo et al., 2017), of the class logits
        p = _softmax(logits / t) @ to_label
        return float(-np.mean(np.log(np.clip(p[np.arange(len(gold)), gold], 1e-12, 1.0))))

    temperature = float(minimize_scalar(nll, bounds=(0.2, 5.0), method="bounded").x)
    model, idf = _fit(texts, classes, encoder=encoder, scale=scale, dim=dim, C=C)
    selection = {"validation_rows": int(val.sum()), "validation_accuracy_by_C": tried, "C": C,
                 "temperature": round(temperature, 4), "embedding_scale": scale, "ngram_buckets": dim,
                 "validation_nll": {"before": round(nll(1.0), 4), "after": round(nll(temperature), 4)}}
    return _export(model, idf, encoder=encoder, scale=scale, labels=None, group_of=group_of,
                   temperature=temperature, meta={**(meta or {}), "selection": selection})
