"""Write the sample of ../shared/data that the test suite ships (tests/data/shared/), so a fresh clone runs the
tests that measure on the project's datasets. Deterministic: the same source gives the same files.

    python tests/data/shared/derive.py [--shared ../shared/data] [--out tests/data/shared]

What is kept, and why (README.md beside this script says the same for readers of the data):
- every row the held-out evaluations of `turnout eval-signals` score: all LLMRouter test rows (complexity and
  domain), the whole jailbreak test file (its F1 is read against a 0.95 bar, which a smaller
  sample cannot resolve), plus the jailbreak training rows whose text is also a test row (the loader drops those
  from the test side, as it does on the full data);
- every row of the test splits that the shipped routers' published figures are measured on (`held_out_test` in
  turnout/models/data/routers/*/router.json): the LLMRouter test rows above and the whole GSM8K test split;
- every MMLU row the domain evaluation holds out (the held-out rows among the first 120 of each subject), so
  the figures in turnout/models/data/classifier_metrics.json reproduce on the sample exactly;
- a fixed share of the rest, chosen by a hash of the text (never by how a row scores): a few training rows of each
  table so the loaders' train/test splits are both populated and every LLMRouter task appears, and a handful of
  LLMRouter test rows that leak into train, with their train twins, so the leak filter has something to drop;
- for MT-Bench judgements, only the columns the loader reads (the judge prompt and judgement texts are dropped).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the loaders' own split rule (turnout.eval.signal_data.held_out for the classifiers, turnout.eval.table.held_out
# for the routing tables: the same hash), repeated here so the sample does not depend on the package it tests
HELD_OUT_PERCENT = 20
MMLU_FIRST_ROWS = 120  # domain_examples reads the first 120 rows of each MMLU subject


def bucket(text: str, salt: str = "") -> int:
    return int(hashlib.sha1((salt + text).encode("utf-8")).hexdigest()[:8], 16) % 100


def held_out(text: str) -> bool:
    return bucket(text) < HELD_OUT_PERCENT


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def copy(shared: Path, out: Path, relative: str) -> None:
    (out / relative).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shared / relative, out / relative)


def llmrouter(shared: Path, out: Path) -> None:
    columns, rows = read_csv(shared / "llmrouter/routing_scores_merged.csv")
    leaked = [r for r in rows if r["split"] == "test" and r["in_train_and_test"] == "True" and bucket(r["query"], "leak") < 8]
    twins = {r["query"] for r in leaked}
    first_of_task: dict[str, int] = {}  # every task appears (4 of the 14 have no test rows)
    keep = []
    for r in rows:
        train = r["split"] == "train"
        if train and r["query"] not in twins and bucket(r["query"], "train") >= 1 and first_of_task.get(r["task_name"], 0) >= 2:
            continue
        if not train and r["in_train_and_test"] == "True" and r not in leaked:
            continue
        if train:
            first_of_task[r["task_name"]] = first_of_task.get(r["task_name"], 0) + 1
        keep.append(r)
    write_csv(out / "llmrouter/routing_scores_merged.csv", columns, keep)
    copy(shared, out, "llmrouter/llm_candidates/default_llm.json")
    copy(shared, out, "llmrouter/LICENSE")


def mmlu(shared: Path, out: Path) -> None:
    base = "routellm/evals/mmlu"
    for path in sorted((shared / base / "responses").glob("mmlu_*.csv")):
        columns, rows = read_csv(path)
        # every row the domain evaluation holds out, so its figures are the full data's; the sample stays under
        # MMLU_FIRST_ROWS rows, so the loader's cap reads all of it and no row held out beyond the cap slips in
        evaluated = [r for r in rows[:MMLU_FIRST_ROWS] if held_out(r["prompt"])]
        training = [r for r in rows if not held_out(r["prompt"])][:2]
        if len(evaluated) + len(training) > MMLU_FIRST_ROWS:
            raise SystemExit(f"{path.name}: the sample would not fit under the loader's first {MMLU_FIRST_ROWS} rows")
        write_csv(out / base / "responses" / path.name, columns, [r for r in rows if r in evaluated or r in training])
    copy(shared, out, f"{base}/contaminated_prompts.jsonl")


def gsm8k(shared: Path, out: Path) -> None:
    base = "routellm/evals/gsm8k"
    columns, rows = read_csv(shared / base / "gsm8k_responses.csv")
    # the whole test split (the loader's split is by hash of the prompt, each row on its own, and it drops
    # duplicates and contaminated prompts by text, so every copy of a test prompt is kept), and 4 % of the rest by
    # hash; whole rows, since the responses give the cost estimate
    keep = [r for r in rows if held_out(r["prompt"]) or bucket(r["prompt"], "gsm8k") < 4]
    write_csv(out / base / "gsm8k_responses.csv", columns, keep)
    copy(shared, out, f"{base}/contaminated_prompts.jsonl")


def mt_bench(shared: Path, out: Path) -> None:
    base = shared / "routellm/evals/mt_bench"
    questions = [json.loads(line) for line in (base / "question.jsonl").open(encoding="utf-8") if line.strip()]
    keep = [q for q in questions if bucket(q["turns"][0], "mt-bench") < 25]
    ids = {q["question_id"] for q in keep}
    judgements = [{k: j[k] for k in ("question_id", "model", "judge", "score", "turn")}
                  for j in map(json.loads, (base / "judgements.jsonl").open(encoding="utf-8"))
                  if j["question_id"] in ids]
    write_jsonl(out / "routellm/evals/mt_bench/question.jsonl", keep)
    write_jsonl(out / "routellm/evals/mt_bench/judgements.jsonl", judgements)
    copy(shared, out, "routellm/evals/mt_bench/contaminated_prompts.jsonl")
    copy(shared, out, "routellm/LICENSE")


def jailbreak(shared: Path, out: Path) -> None:
    base = "jailbreak/default"
    columns, test = read_csv(shared / base / "jailbreak_dataset_test.csv")
    _, train = read_csv(shared / base / "jailbreak_dataset_train.csv")
    test_texts = {r["prompt"] for r in test}
    write_csv(out / base / "jailbreak_dataset_test.csv", columns, test)
    write_csv(out / base / "jailbreak_dataset_train.csv", columns, [r for r in train if r["prompt"] in test_texts])
    copy(shared, out, "jailbreak/LICENSE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parents[3] / "shared" / "data")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    for part in (llmrouter, mmlu, gsm8k, mt_bench, jailbreak):
        part(args.shared, args.out)
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}: {total:,} bytes")


if __name__ == "__main__":
    main()
