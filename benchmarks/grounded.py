"""The `grounded` judge on the project's labelled set (tests/data/grounded/labelled.jsonl): precision and recall
of "unsupported" per sentence, with 95 % percentile-bootstrap intervals over items (all of an item's sentences
drawn together), overall and per kind of case.

    .venv/bin/python benchmarks/grounded.py              # the dev split (even ids): for tuning
    .venv/bin/python benchmarks/grounded.py --final      # the final split (odd ids): run once, reported

Each item becomes a request (the context as a system message, the question as the user turn) and an answer
(its sentences joined); the judge's own sentence split must give back the labelled sentences."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from turnout.judges import build_judge
from turnout.judges.grounded import GroundedJudge

DATA = ROOT / "tests/data/grounded/labelled.jsonl"


def load(split: str) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in DATA.open(encoding="utf-8") if line.strip()]
    return [i for i in items if split == "all" or (i["id"] % 2 == (0 if split == "dev" else 1))]


def as_request(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    request = {"model": "m", "messages": [{"role": "system", "content": "\n\n".join(item["context"])},
                                          {"role": "user", "content": item["question"]}]}
    text = " ".join(s["text"] for s in item["sentences"])
    return request, {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


async def predict(judge: GroundedJudge, items: list[dict[str, Any]]) -> list[list[bool]]:
    """Per item, per labelled sentence: flagged unsupported?"""
    out = []
    for item in items:
        request, answer = as_request(item)
        verdict = await judge.judge(request, answer, None)  # type: ignore[arg-type]
        by_text = {s["text"]: not s["supported"] for s in verdict.detail["sentences"]}
        missing = [s["text"] for s in item["sentences"] if s["text"] not in by_text]
        if missing:
            raise SystemExit(f"item {item['id']}: the judge split the answer differently: {missing[0]!r}")
        out.append([by_text[s["text"]] for s in item["sentences"]])
    return out


def prf(pairs: list[tuple[bool, bool]]) -> dict[str, float | None]:
    """(flagged, truly unsupported) pairs → precision and recall of 'unsupported'."""
    tp = sum(f and t for f, t in pairs)
    flagged = sum(f for f, _ in pairs)
    true = sum(t for _, t in pairs)
    return {"precision": tp / flagged if flagged else None, "recall": tp / true if true else None,
            "flagged": flagged, "unsupported": true, "sentences": len(pairs)}


def with_intervals(items: list[dict], flags: list[list[bool]], kinds: set[str] | None,
                   resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    def pairs(idx: Any) -> list[tuple[bool, bool]]:
        return [(f, s["label"] == "unsupported") for i in idx for f, s in zip(flags[i], items[i]["sentences"])
                if kinds is None or s["kind"] in kinds]

    point = prf(pairs(range(len(items))))
    rng = np.random.default_rng(seed)
    draws = [prf(pairs(rng.integers(0, len(items), len(items)))) for _ in range(resamples)]
    for key in ("precision", "recall"):
        values = [d[key] for d in draws if d[key] is not None]
        point[f"{key}_ci95"] = ([round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]
                                if values else None)
        point[key] = None if point[key] is None else round(float(point[key]), 4)
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--final", action="store_true", help="score the held-out final split")
    parser.add_argument("--params", default="{}", help="judge params as JSON (for tuning on dev)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    split = "final" if args.final else "dev"
    items = load(split)
    judge = build_judge({"name": "grounded", "params": json.loads(args.params)}, "grounded")
    flags = asyncio.run(predict(judge, items))  # type: ignore[arg-type]
    kinds = sorted({s["kind"] for i in items for s in i["sentences"]})
    report = {"split": split, "items": len(items), "params": judge.params.model_dump(),
              "threshold": judge.threshold, "overall": with_intervals(items, flags, None),
              "reuses_context_words": with_intervals(items, flags, {"verbatim", "paraphrase", "negation",
                                                                     "reuse_words", "number_swap", "entity_swap",
                                                                     "relation_flip"}),
              "flag_rate_by_kind": {k: prf([(f, True) for i, it in enumerate(items)
                                            for f, s in zip(flags[i], it["sentences"]) if s["kind"] == k])
                                    ["recall"] for k in kinds},
              "bootstrap": "1000 resamples of items, seed 0, percentile 95 %"}
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
