"""Held-out quality of the classifier and PII signals: what `turnout eval-signals` reports, and what
scripts/train_signal_classifiers.py records next to the shipped artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from turnout.eval.signal_data import Examples, complexity_examples, domain_examples, jailbreak_examples, pii_examples
from turnout.models.classifier import LinearClassifier, load_classifier
from turnout.models.encoders import get_encoder
from turnout.signals.pii import find_pii

# the classifiers scripts/train_signal_classifiers.py trains and classifier_metrics.json describes; jailbreak has its
# own training script and report (turnout.eval.injection_report), and is scored here on llm-warden for comparison
TASKS = {"domain": domain_examples, "complexity": complexity_examples}


def _probabilities(model: LinearClassifier, examples: Examples) -> np.ndarray:
    x = get_encoder(model.encoder).encode([t for t, _ in examples])
    logits = x @ model.coef.T + model.intercept
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def wilson_ci95(hits: int, n: int) -> list[float]:
    """Wilson score interval of a proportion: the held-out sets are small (50 prompts for some domains)."""
    from scipy.stats import binomtest

    interval = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return [round(float(interval.low), 4), round(float(interval.high), 4)]


def evaluate_classifier(task: str, model: LinearClassifier, test: Examples) -> dict[str, Any]:
    p = _probabilities(model, test)
    gold = np.array([label for _, label in test])
    predicted = np.array(model.labels)[p.argmax(axis=1)]
    hits = int((predicted == gold).sum())
    report: dict[str, Any] = {"test_rows": len(test), "accuracy": round(hits / len(test), 4),
                              "accuracy_ci95": wilson_ci95(hits, len(test))}
    positive = {"complexity": "hard", "jailbreak": "jailbreak"}.get(task)
    if positive is not None:
        column = model.labels.index(positive)
        is_pos = gold == positive
        pred_pos = p[:, column] >= 0.5
        tp = int((pred_pos & is_pos).sum())
        precision = tp / max(1, int(pred_pos.sum()))
        recall = tp / max(1, int(is_pos.sum()))
        report.update({"auc": round(auc(p[:, column], is_pos), 4), "precision": round(precision, 4),
                       "recall": round(recall, 4),
                       "f1": round(2 * precision * recall / max(1e-9, precision + recall), 4),
                       "positive_rate": round(float(is_pos.mean()), 4)})
    else:
        present = [label for label in model.labels if (gold == label).any()]
        report["per_label_accuracy"] = {label: round(float((predicted[gold == label] == label).mean()), 4)
                                        for label in present}
        report["per_label_rows"] = {label: int((gold == label).sum()) for label in present}
        report["per_label_ci95"] = {label: wilson_ci95(int((predicted[gold == label] == label).sum()),
                                                       int((gold == label).sum())) for label in present}
    return report


def evaluate_pii(path: Path) -> dict[str, Any]:
    rows = pii_examples(path)
    per_type: dict[str, list[int]] = {}
    false_positives = 0
    for row in rows:
        found = {(s.type, row["text"][s.start:s.end]) for s in find_pii(row["text"])}
        for span in row["spans"]:
            hits = per_type.setdefault(span["type"], [0, 0])
            hits[0] += (span["type"], span["value"]) in found
            hits[1] += 1
        if not row["spans"]:
            false_positives += len(found)
    found_total = sum(h for h, _ in per_type.values())
    total = sum(n for _, n in per_type.values())
    return {"prompts": len(rows), "labelled_items": total, "recall": round(found_total / max(1, total), 4),
            "per_type_recall": {k: round(h / n, 4) for k, (h, n) in sorted(per_type.items())},
            "false_positives_on_clean_prompts": false_positives,
            "clean_prompts": sum(1 for r in rows if not r["spans"])}


def evaluate_all(shared: Path, pii_set: Path, artifacts: dict[str, str] | None = None) -> dict[str, Any]:
    artifacts = artifacts or {}
    report: dict[str, Any] = {}
    for task, loader in TASKS.items():
        _, test = loader(shared)
        report[task] = evaluate_classifier(task, load_classifier(artifacts.get(task, f"builtin:{task}")), test)
    report["jailbreak"] = evaluate_classifier("jailbreak", load_classifier(artifacts.get("jailbreak", "builtin:jailbreak")),
                                              jailbreak_examples(shared)[1])
    report["pii"] = evaluate_pii(pii_set)
    return report
