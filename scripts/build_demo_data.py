"""Build turnout/demo/gsm8k_replay.jsonl.gz from RouteLLM's GSM8K eval file in ../shared/data.

Each line: {"prompt": ..., "answers": {model: text}, "correct": {model: bool}}.
Run from the repository root: python scripts/build_demo_data.py [SHARED_DATA_DIR]
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

MODELS = {"gpt-4-1106-preview": "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral-8x7b-instruct-v0.1"}


def main() -> None:
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    source = shared / "routellm/evals/gsm8k/gsm8k_responses.csv"
    out = Path("turnout/demo/gsm8k_replay.jsonl.gz")
    with source.open(newline="", encoding="utf-8") as f, gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as g:
        for row in csv.DictReader(f):
            record = {
                "prompt": row["prompt"].strip(),
                "answers": {name: row[f"{col}_response"].strip() for col, name in MODELS.items()},
                "correct": {name: row[col] == "True" for col, name in MODELS.items()},
            }
            g.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
