"""Quality of the injection detector beside the embedding classifier it replaced and the detector it retrained
(`detector (previous)`, the artifact shipped before the last retraining, kept beside the splits), on every split
not trained on: llm-warden's test split (English), the hand-written multilingual `dev` and `final` (calibration),
`final5` (read once before, for the previous detector), `final6` (written before the last round, held out from
it, read once at its end), `final7` (written after it, by a writer who read no other split or training text; the
shipped detector unchanged since), and `everyday_shared`, 1,527 benign prompts never trained on, for false alarms on everyday prompts. `final2` …
`final4` are training data since the last round. What `turnout eval-signals` reports under "injection" and
benchmarks/injection.py prints.

Both detectors see the same conversation texts (every message, every text-bearing part): the new one scores each
message in windows and takes the highest, the old one scores the joined text once, as it always did. Intervals
are percentile-bootstrap 95 % intervals over rows (1,000 resamples, seeded); false-alarm intervals are Wilson."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from turnout.eval.injection_data import Row, everyday_rows, multilingual_rows, warden_rows
from turnout.models.injection import Detector, load_detector
from turnout.models.injection_text import message_texts

RESAMPLES = 1000
SEED = 0
PREVIOUS = Path(__file__).parent / "data/injection/detector_previous.npz"  # in a source checkout, not in the wheel
DETECTORS = {"embedding (old)": "builtin:jailbreak-embedding",
             **({"detector (previous)": str(PREVIOUS)} if PREVIOUS.exists() else {}),
             "detector (new)": "builtin:jailbreak"}
#: benign rows that count as everyday prompts for the false-alarm rate (look-alikes are reported on their own)
EVERYDAY = ("everyday", "system")


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half)."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _prf(flagged: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    tp = int((flagged & positive).sum())
    precision = tp / max(1, int(flagged.sum()))
    recall = tp / max(1, int(positive.sum()))
    return precision, recall, 2 * precision * recall / max(1e-9, precision + recall)


def _interval(samples: list[float]) -> list[float]:
    values = np.array([s for s in samples if not np.isnan(s)])
    if values.size == 0:
        return [float("nan"), float("nan")]
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def scores_of(detector: Detector, rows: Sequence[Row]) -> np.ndarray:
    return np.array([detector.score(message_texts(r["messages"]))[0] for r in rows])


def metrics(scores: np.ndarray, rows: Sequence[Row], threshold: float) -> dict[str, Any]:
    """Precision, recall, F1, AUC and false-alarm rates at `threshold`, each with its bootstrap interval, and
    recall / false alarms per language and per kind of row."""
    positive = np.array([r["label"] == 1 for r in rows])
    everyday = np.array([r["label"] == 0 and r["kind"] in EVERYDAY for r in rows])
    lookalike = np.array([r["label"] == 0 and r["kind"] == "lookalike" for r in rows])
    flagged = scores >= threshold
    precision, recall, f1 = _prf(flagged, positive)
    rng = np.random.default_rng(SEED)
    boot: dict[str, list[float]] = {"precision": [], "recall": [], "f1": [], "auc": []}
    for _ in range(RESAMPLES):
        take = rng.integers(0, len(rows), len(rows))
        p, r, f = _prf(flagged[take], positive[take])
        boot["precision"].append(p)
        boot["recall"].append(r)
        boot["f1"].append(f)
        boot["auc"].append(auc(scores[take], positive[take]))
    out: dict[str, Any] = {
        "rows": len(rows), "positives": int(positive.sum()), "threshold": threshold,
        "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4),
        "auc": round(auc(scores, positive), 4), "ci95": {k: _interval(v) for k, v in boot.items()},
        "false_alarms_everyday": _rate(flagged, everyday), "false_alarms_lookalike": _rate(flagged, lookalike),
        "false_alarms_benign": _rate(flagged, ~positive),
    }
    langs = sorted({r["lang"] for r in rows})
    if len(langs) > 1:
        out["per_language"] = {}
        for lang in langs:
            mine = np.array([r["lang"] == lang for r in rows])
            p, r_, f = _prf(flagged[mine], positive[mine])
            out["per_language"][lang] = {"f1": round(f, 4), "recall": round(r_, 4),
                                         "false_alarms": _rate(flagged, mine & ~positive)["rate"]}
    out["per_kind"] = {kind: {"rows": int(mine.sum()), "flagged": round(float(flagged[mine].mean()), 4)}
                       for kind in sorted({r["kind"] for r in rows})
                       for mine in [np.array([r["kind"] == kind for r in rows])]}
    return out


def _rate(flagged: np.ndarray, among: np.ndarray) -> dict[str, Any]:
    from scipy.stats import binomtest

    n, hits = int(among.sum()), int((flagged & among).sum())
    if n == 0:
        return {"rate": None, "flagged": 0, "of": 0}
    ci = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"rate": round(hits / n, 4), "flagged": hits, "of": n, "ci95": [round(float(ci.low), 4),
                                                                           round(float(ci.high), 4)]}


#: `everyday_shared`: 1,527 benign prompts never trained on (LLMRouter test, GSM8K test; injection_data.everyday_rows),
#: for the false-alarm rate on everyday prompts with a tight interval
#: final2-final4 are trained on since the round of final6 (their earlier readings are in docs/signals.md)
ALL_SPLITS = ("warden_test", "dev", "final", "final5", "final6", "final7", "everyday_shared")


def split_rows(shared: Path, splits: Sequence[str] = ALL_SPLITS) -> dict[str, list[Row]]:
    out = {}
    for split in splits:
        if split == "warden_test":
            out[split] = warden_rows(shared)
        elif split == "everyday_shared":
            rows = everyday_rows(shared)
            if rows:  # a sample of shared/ may hold none of its sources
                out[split] = rows
        else:
            out[split] = multilingual_rows(split, shared)
    return out


def evaluate_injection(shared: Path, splits: Sequence[str] = ALL_SPLITS,
                       detectors: dict[str, str] | None = None) -> dict[str, Any]:
    """{split: {detector: metrics}} for the old, the previous and the new detector, each at its default threshold
    (0.5 for the old one, 0.7 too, its guard's default; the detectors' calibrated thresholds, and 0.5)."""
    report: dict[str, Any] = {"method": "percentile bootstrap over rows, 1,000 resamples, seed 0; false-alarm "
                                        "intervals: Wilson", "splits": {}}
    rows = split_rows(shared, splits)
    for name, artifact in (detectors or DETECTORS).items():
        detector = load_detector(artifact)
        thresholds = sorted({0.5, detector.threshold} | ({0.7} if artifact.endswith("embedding") else set()))
        for split, split_rows_ in rows.items():
            scores = scores_of(detector, split_rows_)
            report["splits"].setdefault(split, {})[name] = {
                f"at_{t:g}": metrics(scores, split_rows_, t) for t in thresholds}
            report["splits"][split][name]["default_threshold"] = detector.threshold
    return report
