"""Build the routers shipped in turnout/models/data/routers/ (`artifact: builtin:NAME` in a config).

Each is fitted on 80 % of its dataset's train split and its `cost_weight` calibrated on the other 20 % (never
on the test split, which stays for `turnout eval`). Calibration searches only cost_weight ≥ 0, the range a
server accepts. What the router then serves on the test split (quality and cost as shares of the best single
model's, strong-model calls, with bootstrap intervals) is written into router.json as `held_out_test`; the
README's figures about the shipped routers are those. Run from the repository root:

    python scripts/build_default_routers.py [--shared ../shared/data] [--only llmrouter-ensemble,...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from turnout.eval.datasets import load_named
from turnout.eval.harness import calibrate, operating_point, train
from turnout.eval.table import held_out
from turnout.selection.base import BUILTIN_ROUTERS

# name: (dataset, router, calibration target)
ROUTERS = {
    "gsm8k-svm": ("gsm8k", "svm", "quality=0.95"),  # the demo's: GPT-4-1106-preview vs Mixtral-8x7B on math
    "llmrouter-hybrid": ("llmrouter", "hybrid", "quality=0.95"),  # nine open 7–70B models, 14 task kinds
    "llmrouter-ensemble": ("llmrouter", "ensemble", "quality=0.95"),  # the same nine, feature-rich (issue 17)
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--only", default=None, help="comma-separated names (default: all)")
    args = parser.parse_args()
    for name, (dataset, router, target) in ROUTERS.items():
        if args.only and name not in args.only.split(","):
            continue
        data = load_named(dataset, args.shared).split("train")
        validation = [i for i, p in enumerate(data.prompts) if held_out(p + "|validation", 20)]
        fit = data.subset([i for i in range(len(data)) if i not in set(validation)], f"{dataset}[train-80%]")
        out = BUILTIN_ROUTERS / name
        train(fit, router, {}, out, split="")
        result = calibrate(data.subset(validation, f"{dataset}[train-20%]"), out, target, split="")
        meta = json.loads((out / "router.json").read_text())
        meta["trained_on"] = f"{fit.name}, calibrated for {target} on {dataset}[train-20%]"
        (out / "router.json").write_text(json.dumps(meta, indent=2) + "\n")
        meta["held_out_test"] = operating_point(load_named(dataset, args.shared), out, "test")
        (out / "router.json").write_text(json.dumps(meta, indent=2) + "\n")
        print(f"{name}: {len(fit)} prompts, {result}\n  on the test split: {meta['held_out_test']}")


if __name__ == "__main__":
    main()
