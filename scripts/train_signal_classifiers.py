"""Train the classifiers that ship with turnout (domain, complexity) on ../shared/data and write
them to turnout/models/data/NAME.npz with their held-out metrics.

Run from the repository root: python scripts/train_signal_classifiers.py [--shared ../shared/data]
[--tasks domain,complexity]

The jailbreak detector is trained by its own script (see docs/signals.md, jailbreak).

`classifier_metrics.json` is rewritten for every task each run: a task not retrained is re-evaluated from its
shipped artifact, so the file always describes the models beside it (tests/models/test_shipped_classifiers.py
checks that it does). Training is deterministic (lbfgs, fixed data order), so a rerun reproduces the figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from turnout.eval.signals_report import TASKS, evaluate_classifier
from turnout.models.classifier import LinearClassifier

SOURCES = {
    "domain": "LLMRouter tasks (MIT) and RouteLLM MMLU subjects (Apache-2.0), mapped to domains",
    "complexity": "LLMRouter routing scores (MIT): hard = the four 7-9B models score < 0.5 on average",
}
DATA = Path("turnout/models/data")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--C", type=float, default=4.0)
    parser.add_argument("--tasks", default=",".join(TASKS), help="the classifiers to retrain (comma-separated)")
    args = parser.parse_args()
    retrain = set(args.tasks.split(","))
    unknown = retrain - set(TASKS)
    if unknown:
        parser.error(f"--tasks: unknown {sorted(unknown)}; known: {', '.join(TASKS)}")
    metrics = {}
    for task, loader in TASKS.items():
        train, test = loader(args.shared)
        path = DATA / f"{task}.npz"
        if task in retrain:
            model = LinearClassifier.fit([t for t, _ in train], [label for _, label in train], C=args.C,
                                         meta={"task": task, "trained_on": SOURCES[task], "train_rows": len(train)})
            metrics[task] = model.meta["held_out"] = evaluate_classifier(task, model, test)
            model.save(path)
        else:
            metrics[task] = evaluate_classifier(task, LinearClassifier.load(path), test)
        print(task, "retrained" if task in retrain else "re-evaluated", json.dumps(metrics[task]))
    (DATA / "classifier_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
