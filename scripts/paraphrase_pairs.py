"""Write tests/data/paraphrases.jsonl: labelled prompt pairs for the semantic cache (hit rate and precision).
Written by hand for turnout (no external source): `same` pairs ask the same thing in other words; `different`
pairs are near misses (same topic, another entity, number or intent) and unrelated prompts. Four splits, each
written before the next round of work on the cache's checks: `dev` (used to design them and to choose the default
threshold), `check` and `check2` (each measured once when new, then used to find what the checks missed), and
`test` (written after the checks and the default were final; measured once, reported as it came out).

The pairs of each split are in scripts/paraphrases/SPLIT.py. Nearly every near miss here keeps its framing words
on both sides and paraphrases almost never do (issue 12); the set without that bias is written by
scripts/write_cache_pairs.py (tests/data/cache_pairs/).

    python scripts/paraphrase_pairs.py
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

SPLITS = ("dev", "check", "check2", "test")


def main() -> None:
    out = Path("tests/data/paraphrases.jsonl")
    sys.path.insert(0, str(Path(__file__).parent))
    modules = {split: importlib.import_module(f"paraphrases.{split}") for split in SPLITS}
    splits = {split: (m.SAME, m.DIFFERENT) for split, m in modules.items()}
    rows = [{"a": a, "b": b, "same": same, "split": split}
            for split, (same_pairs, different_pairs) in splits.items()
            for same, pairs in ((True, same_pairs), (False, different_pairs)) for a, b in pairs]
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    for split, (same_pairs, different_pairs) in splits.items():
        print(f"wrote {out} [{split}]: {len(same_pairs)} same-meaning and {len(different_pairs)} different-meaning pairs")


if __name__ == "__main__":
    main()
