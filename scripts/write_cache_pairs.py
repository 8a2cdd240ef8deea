"""Write tests/data/cache_pairs/{tune,final}.jsonl: the semantic cache's evaluation pairs (issue 12), both classes
varying their framing (see tests/data/cache_pairs/README.md for how they were written).

Each class is shuffled with a fixed seed and cut in half: `tune` may be looked at and used to choose; `final` is
measured once, at the end. Both were written, and assigned, before any tuning.

    python scripts/write_cache_pairs.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 12  # the number: fixed before any pair was measured
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "cache_pairs"


def rows() -> dict[str, list[dict]]:
    sys.path.insert(0, str(Path(__file__).parent))
    from cache_pairs.different import DIFFERENT
    from cache_pairs.same import SAME

    splits: dict[str, list[dict]] = {"tune": [], "final": []}
    for same, pairs in ((True, SAME), (False, DIFFERENT)):
        shuffled = list(pairs)
        random.Random(SEED).shuffle(shuffled)
        half = len(shuffled) // 2
        for split, part in (("tune", shuffled[:half]), ("final", shuffled[half:])):
            splits[split] += [{"a": a, "b": b, "same": same, "domain": domain, "style": style}
                              for domain, style, a, b in part]
    return splits


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for split, items in rows().items():
        path = OUT / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items), encoding="utf-8")
        same = sum(r["same"] for r in items)
        print(f"wrote {path}: {same} same-meaning and {len(items) - same} different-meaning pairs")


if __name__ == "__main__":
    main()
