"""Held-out quality of the classifier and PII signals: what `turnout eval-signals` reports, and what
scripts/train_signal_classifiers.py records next to the shipped artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from turnout.eval.signal_data import (
    Examples,
    complexity_examples,
    domain_examples,
    fact_check_examples,
    hand_written,
    jailbreak_examples,
    modality_examples,
    pii_examples,
)
from turnout.models.classifier import LinearClassifier, load_classifier
from turnout.models.injection import EmbeddingClassifierDetector, load_detector
from turnout.signals.pii import find_pii

# the classifiers scripts/train_signal_classifiers.py trains and classifier_metrics.json describes; jailbreak has its
# own training script and report (turnout.eval.injection_report), and is scored here on llm-warden for comparison
TASKS = {"domain": domain_examples, "complexity": complexity_examples}


def _probabilities(model: LinearClassifier, examples: Examples) -> np.ndarray:
    return model.proba_texts([t for t, _ in examples])


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


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of the top probability: the row-weighted mean of |accuracy - confidence| over
    ten equal-width confidence bins (Guo et al., 2017)."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * (which == b).mean()
                     for b in range(bins) if (which == b).any()))


def evaluate_classifier(task: str, model: LinearClassifier, test: Examples) -> dict[str, Any]:
    p = _probabilities(model, test)
    gold = np.array([label for _, label in test])
    predicted = np.array(model.labels)[p.argmax(axis=1)]
    hits = int((predicted == gold).sum())
    report: dict[str, Any] = {"test_rows": len(test), "accuracy": round(hits / len(test), 4),
                              "accuracy_ci95": wilson_ci95(hits, len(test)),
                              "ece": round(expected_calibration_error(p.max(axis=1), predicted == gold), 4)}
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


BASELINES = Path(__file__).resolve().parent / "data" / "baseline"  # the embedding-only models shipped before


def evaluate_all(shared: Path, pii_set: Path, artifacts: dict[str, str] | None = None) -> dict[str, Any]:
    """Every signal on every held-out split; `TASK_baseline` is the model the shipped one replaced, on the same
    rows. The domain cross-dataset figures come from classifier_metrics.json (they need models trained without
    a source, which scripts/train_signal_classifiers.py fits)."""
    import json

    from turnout.models import classifier

    artifacts = artifacts or {}
    report: dict[str, Any] = {}
    for task, loader in TASKS.items():
        _, test = loader(shared)
        report[task] = evaluate_classifier(task, load_classifier(artifacts.get(task, f"builtin:{task}")), test)
        report[f"{task}_baseline"] = evaluate_classifier(task, load_classifier(str(BASELINES / f"{task}.npz")), test)
    published = json.loads(Path(classifier.__file__).with_name("data").joinpath("classifier_metrics.json").read_text())
    if "domain_cross_dataset" in published and "domain" not in artifacts:
        report["domain_cross_dataset"] = published["domain_cross_dataset"]
    # the embedding classifier `builtin:jailbreak` was, named as the detector names it (`builtin:jailbreak` is the
    # detector now); the detector is scored on the same split, and the multilingual ones, by injection_report
    embedding = load_detector(artifacts.get("jailbreak", "builtin:jailbreak-embedding"))
    if not isinstance(embedding, EmbeddingClassifierDetector):
        raise ValueError("--jailbreak: an embedding classifier .npz (the detector is scored in the injection report)")
    report["jailbreak"] = evaluate_classifier("jailbreak", embedding.model, jailbreak_examples(shared)[1])
    try:  # the injection detectors' own report (multilingual and indirect splits), where it is installed
        from turnout.eval.injection_report import evaluate_injection
    except ImportError as exc:
        report["injection_error"] = str(exc)
    else:
        report["injection"] = evaluate_injection(shared)
    report["fact_check"] = evaluate_fact_check(shared)
    report["modality"] = evaluate_modality(shared)
    report["pii"] = evaluate_pii(pii_set)
    return report


def binary_report(scores: np.ndarray, gold: np.ndarray, threshold: float = 0.5, resamples: int = 1000) -> dict[str, Any]:
    """Accuracy (Wilson interval), precision, recall, F1 (percentile-bootstrap 95 % interval), AUC of a score
    against 0/1 gold labels, at `threshold`."""
    predicted = scores >= threshold
    gold = gold.astype(bool)

    def f1(p: np.ndarray, g: np.ndarray) -> float:
        tp = int((p & g).sum())
        return 2 * tp / max(1, int(p.sum()) + int(g.sum()))

    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(gold), len(gold)) for _ in range(resamples)]
    f1s = np.array([f1(predicted[d], gold[d]) for d in draws])
    tp = int((predicted & gold).sum())
    hits = int((predicted == gold).sum())
    return {"rows": len(gold), "positives": int(gold.sum()), "accuracy": round(hits / len(gold), 4),
            "accuracy_ci95": wilson_ci95(hits, len(gold)),
            "precision": round(tp / max(1, int(predicted.sum())), 4), "recall": round(tp / max(1, int(gold.sum())), 4),
            "f1": round(f1(predicted, gold), 4),
            "f1_ci95": [round(float(np.percentile(f1s, 2.5)), 4), round(float(np.percentile(f1s, 97.5)), 4)],
            "auc": round(auc(scores, gold), 4), "false_alarm_rate": round(
                int((predicted & ~gold).sum()) / max(1, int((~gold).sum())), 4)}


def evaluate_fact_check(shared: Path) -> dict[str, Any]:
    """The fact_check signal on the hand-written dev and final splits and on LLMRouter's test rows (by task)."""
    from turnout.signals.fact_check import fact_check_score

    splits: dict[str, list[tuple[str, int]]] = {
        "hand_written_dev": [(r["text"], r["label"]) for r in hand_written("fact_check", "dev")],
        "hand_written_final": [(r["text"], r["label"]) for r in hand_written("fact_check", "final")],
        "llmrouter_test": fact_check_examples(shared, "test"),
    }
    return {name: binary_report(np.array([fact_check_score(t)[0] for t, _ in rows]),
                                np.array([label for _, label in rows])) for name, rows in splits.items()}


def evaluate_modality(shared: Path) -> dict[str, Any]:
    """Requests for image, audio and video output: per modality on the hand-written splits (a prompt counts as
    right when the set of modalities found is exactly the one asked for), and false alarms on LLMRouter's test
    prompts, none of which asks for one."""
    from turnout.signals.modality import requested_outputs

    report: dict[str, Any] = {}
    for split in ("dev", "final"):
        rows = hand_written("modality", split)
        found = [set(requested_outputs(r["text"])) for r in rows]
        exact = sum(f == ({r["output"]} if r["output"] != "none" else set()) for f, r in zip(found, rows))
        entry: dict[str, Any] = {"rows": len(rows), "exact_accuracy": round(exact / len(rows), 4),
                                 "exact_accuracy_ci95": wilson_ci95(exact, len(rows))}
        for modality in ("image", "audio", "video"):
            entry[modality] = binary_report(np.array([float(modality in f) for f in found]),
                                            np.array([r["output"] == modality for r in rows]))
        report[f"hand_written_{split}"] = entry
    prompts = modality_examples(shared, "test")
    alarms = sum(bool(requested_outputs(t)) for t in prompts)
    report["llmrouter_test"] = {"rows": len(prompts), "false_alarms": alarms,
                                "false_alarm_rate": round(alarms / max(1, len(prompts)), 4),
                                "false_alarm_rate_ci95": wilson_ci95(alarms, len(prompts))}
    return report
