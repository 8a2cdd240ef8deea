"""Train the classifiers that ship with turnout (domain, complexity) on ../shared/data and write them to
turnout/models/data/NAME.npz with their held-out metrics.

Run from the repository root: python scripts/train_signal_classifiers.py [--shared ../shared/data]
[--tasks domain,complexity] [--no-cross-dataset]

The jailbreak detector is trained by its own script (see docs/signals.md, jailbreak).

Features: the `minilm-static` embedding (scaled by 2) beside hashed word/character n-gram TF-IDF (2^15 buckets);
logistic regression, C chosen among 4 and 16 on a validation quarter of the training rows (never the test
rows), probabilities calibrated by temperature scaling on that quarter, then refitted on every training row
(turnout/models/fit_text_classifier.py). The domain model learns each LLMRouter task and MMLU subject as its own
class and reports a domain as the sum of its classes' probabilities. The cross-dataset check (domain only) fits
two more models (with C = 16, the value chosen for the shipped one): one without any MMLU row, scored on MMLU's
held-out rows, and one without any LLMRouter row, scored on LLMRouter's test rows, each on the domains both
sources share; and the embedding-only baseline trained the same two ways.

`classifier_metrics.json` is rewritten for every task each run: a task not retrained is re-evaluated from its
shipped artifact, so the file always describes the models beside it (tests/models/test_shipped_classifiers.py
checks that it does). Training is deterministic (lbfgs, fixed data order), so a rerun reproduces the figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from turnout.eval.signal_data import Examples, domain_sources
from turnout.eval.signals_report import TASKS, evaluate_classifier
from turnout.models.classifier import LinearClassifier
from turnout.models.fit_text_classifier import fit_text_classifier

SOURCES = {
    "domain": "LLMRouter tasks (MIT) and RouteLLM MMLU subjects (Apache-2.0), mapped to domains",
    "complexity": "LLMRouter routing scores (MIT): hard = the four 7-9B models score < 0.5 on average",
}
DATA = Path("turnout/models/data")
SHARED_DOMAINS = {"math", "code", "science", "general"}  # the domains both LLMRouter and MMLU hold


def fit(task: str, train: Examples, shared: Path) -> LinearClassifier:
    meta = {"task": task, "trained_on": SOURCES[task], "train_rows": len(train)}
    texts = [t for t, _ in train]
    if task != "domain":
        return fit_text_classifier(texts, [label for _, label in train], meta=meta)
    source = domain_sources(shared)
    classes = [source[t] for t in texts]
    return fit_text_classifier(texts, classes, group_of={source[t]: d for t, d in train}, meta=meta)


def cross_dataset(train: Examples, test: Examples, shared: Path) -> dict[str, Any]:
    """Train on one source, score on the other: does the model learn subjects or the sources' writing?"""
    source = domain_sources(shared)
    report: dict[str, Any] = {}
    for left_out in ("mmlu", "llmrouter"):
        kept = [(t, d) for t, d in train if not source[t].startswith(left_out)]
        texts = [t for t, _ in kept]
        model = fit_text_classifier(texts, [source[t] for t in texts], group_of={source[t]: d for t, d in kept},
                                    Cs=(16.0,))
        baseline = LinearClassifier.fit(texts, [d for _, d in kept])  # as the embedding-only model was trained
        scored = [(t, d) for t, d in test if source[t].startswith(left_out) and d in SHARED_DOMAINS]
        report[f"without_{left_out}_scored_on_{left_out}"] = evaluate_classifier("domain", model, scored)
        report[f"baseline_without_{left_out}_scored_on_{left_out}"] = evaluate_classifier("domain", baseline, scored)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--tasks", default=",".join(TASKS), help="the classifiers to retrain (comma-separated)")
    parser.add_argument("--no-cross-dataset", action="store_true", help="skip the domain cross-dataset check")
    parser.add_argument("--cross-dataset", action="store_true",
                        help="run the domain cross-dataset check even when domain is not retrained")
    args = parser.parse_args()
    retrain = set(filter(None, args.tasks.split(",")))  # --tasks "": re-evaluate the shipped files only
    unknown = retrain - set(TASKS)
    if unknown:
        parser.error(f"--tasks: unknown {sorted(unknown)}; known: {', '.join(TASKS)}")
    old = json.loads((DATA / "classifier_metrics.json").read_text())
    metrics: dict[str, Any] = {}
    for task, loader in TASKS.items():
        train, test = loader(args.shared)
        path = DATA / f"{task}.npz"
        if task in retrain:
            model = fit(task, train, args.shared)
            model.save(path)  # scored as shipped: the n-gram weights are stored as float16
            metrics[task] = model.meta["held_out"] = evaluate_classifier(task, LinearClassifier.load(path), test)
            model.save(path)
        else:
            metrics[task] = evaluate_classifier(task, LinearClassifier.load(path), test)
        print(task, "retrained" if task in retrain else "re-evaluated", json.dumps(metrics[task]), flush=True)
        if task == "domain":
            if ("domain" in retrain and not args.no_cross_dataset) or args.cross_dataset:
                metrics["domain_cross_dataset"] = cross_dataset(train, test, args.shared)
            elif "domain_cross_dataset" in old:
                metrics["domain_cross_dataset"] = old["domain_cross_dataset"]
    (DATA / "classifier_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
