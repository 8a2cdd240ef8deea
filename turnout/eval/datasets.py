"""RoutingTables from ../shared/data: LLMRouter (9 open models, 14 tasks) and RouteLLM's MMLU, GSM8K and
MT-Bench (GPT-4-1106-preview vs Mixtral-8x7B-Instruct). Costs are estimated from token counts (about 4
characters a token) and list prices, since the data carries none; each loader says what it assumes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from turnout.context import estimate_tokens
from turnout.eval.table import DataError, RoutingTable, held_out

STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
# USD per 1M tokens (input, output): OpenAI's list price for gpt-4-1106-preview, Together AI's for Mixtral
ROUTELLM_PRICES = {STRONG: (10.0, 30.0), WEAK: (0.6, 0.6)}
LLMROUTER_OUTPUT_TOKENS = 256  # LLMRouter's per-query token counts are not in the snapshot: assume this
DATASETS = ("llmrouter", "mmlu", "gsm8k", "mt-bench")


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return {json.loads(line)["eval_prompt"] for line in path.open(encoding="utf-8") if line.strip()}


def llmrouter(shared: Path, drop_leaked: bool = True) -> RoutingTable:
    """6,108 questions × 9 models; its own train/test split (test rows also in train dropped by default)."""
    prices = {name: float(spec["input_price"]) for name, spec in
              json.loads((shared / "llmrouter/llm_candidates/default_llm.json").read_text()).items()}
    rows = _csv(shared / "llmrouter/routing_scores_merged.csv")
    models = [c[len("score__"):] for c in rows[0] if c.startswith("score__")]
    seen: set[tuple[str, str]] = set()
    keep = []
    for row in rows:
        if drop_leaked and row["split"] == "test" and row["in_train_and_test"] == "True":
            continue
        key = (row["query"], row["split"])
        if key in seen or (row["split"] == "train" and (row["query"], "test") in seen):
            continue
        seen.add(key)
        keep.append(row)
    prompts = [r["query"] for r in keep]
    tokens = np.array([estimate_tokens(p) + LLMROUTER_OUTPUT_TOKENS for p in prompts], dtype=float)
    scores = np.array([[float(r[f"score__{m}"]) for m in models] for r in keep])
    costs = tokens[:, None] * np.array([prices[m] for m in models])[None, :] / 1e6
    return RoutingTable(prompts, models, scores, costs, [r["task_name"] for r in keep], [r["split"] for r in keep],
                        name="llmrouter")


def _pair_table(name: str, prompts: list[str], strong: list[float], weak: list[float], out_strong: list[int],
                out_weak: list[int], tasks: list[str]) -> RoutingTable:
    in_tokens = np.array([estimate_tokens(p) for p in prompts], dtype=float)
    costs = np.zeros((len(prompts), 2))
    for j, (model, out) in enumerate(((STRONG, out_strong), (WEAK, out_weak))):
        price_in, price_out = ROUTELLM_PRICES[model]
        costs[:, j] = (in_tokens * price_in + np.asarray(out, dtype=float) * price_out) / 1e6
    return RoutingTable(prompts, [STRONG, WEAK], np.column_stack([strong, weak]).astype(float), costs, tasks,
                        ["test" if held_out(p) else "train" for p in prompts], name=name)


def mmlu(shared: Path) -> RoutingTable:
    """14,037 MMLU questions (contaminated ones dropped), correctness of each model; 8 output tokens assumed."""
    base = shared / "routellm/evals/mmlu"
    bad = _contaminated(base / "contaminated_prompts.jsonl")
    prompts, strong, weak, tasks, seen = [], [], [], [], set()
    for path in sorted((base / "responses").glob("mmlu_*.csv")):
        for row in _csv(path):
            if row["prompt"] in bad or row["prompt"] in seen:
                continue
            seen.add(row["prompt"])
            prompts.append(row["prompt"])
            strong.append(float(row["gpt-4-1106-preview"] == "True"))
            weak.append(float(row["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True"))
            tasks.append(path.stem[len("mmlu_"):])
    n = len(prompts)
    return _pair_table("mmlu", prompts, strong, weak, [8] * n, [8] * n, tasks)


def gsm8k(shared: Path) -> RoutingTable:
    """1,307 GSM8K questions (contaminated dropped); output tokens from each model's recorded answer."""
    base = shared / "routellm/evals/gsm8k"
    bad = _contaminated(base / "contaminated_prompts.jsonl")
    rows = [r for r in _csv(base / "gsm8k_responses.csv") if r["prompt"] not in bad]
    rows = list({r["prompt"]: r for r in rows}.values())
    return _pair_table("gsm8k", [r["prompt"] for r in rows],
                       [float(r["gpt-4-1106-preview"] == "True") for r in rows],
                       [float(r["mistralai/Mixtral-8x7B-Instruct-v0.1"] == "True") for r in rows],
                       [estimate_tokens(r["gpt-4-1106-preview_response"]) for r in rows],
                       [estimate_tokens(r["mistralai/Mixtral-8x7B-Instruct-v0.1_response"]) for r in rows],
                       ["gsm8k"] * len(rows))


def mt_bench(shared: Path) -> RoutingTable:
    """72 MT-Bench questions (contaminated dropped): judge score / 10 averaged over both turns, routed on the
    first turn as upstream does; 400 output tokens assumed."""
    base = shared / "routellm/evals/mt_bench"
    bad = _contaminated(base / "contaminated_prompts.jsonl")
    questions = {q["question_id"]: q for q in map(json.loads, (base / "question.jsonl").open(encoding="utf-8"))}
    model_names = {"gpt-4-1106-preview": STRONG, "mistralai/Mixtral-8x7B-Instruct-v0.1": WEAK}
    scores: dict[tuple[int, str], list[float]] = {}
    for j in map(json.loads, (base / "judgements.jsonl").open(encoding="utf-8")):
        if j["model"] in model_names and j["score"] >= 0:
            scores.setdefault((j["question_id"], model_names[j["model"]]), []).append(j["score"] / 10)
    keep = [q for qid, q in sorted(questions.items()) if q["turns"][0] not in bad and not (set(q["turns"]) & bad)
            and (qid, STRONG) in scores and (qid, WEAK) in scores]
    prompts = [q["turns"][0] for q in keep]
    return _pair_table("mt-bench", prompts, [float(np.mean(scores[(q["question_id"], STRONG)])) for q in keep],
                       [float(np.mean(scores[(q["question_id"], WEAK)])) for q in keep], [400] * len(keep),
                       [400] * len(keep), [q["category"] for q in keep])


def load_named(name: str, shared: Path) -> RoutingTable:
    loaders = {"llmrouter": llmrouter, "mmlu": mmlu, "gsm8k": gsm8k, "mt-bench": mt_bench}
    if name not in loaders:
        raise DataError(f"unknown dataset '{name}' (built in: {', '.join(DATASETS)}; or give a file path)")
    if not shared.exists():
        raise DataError(f"the shared data folder {shared} does not exist (use --shared)")
    return loaders[name](shared)
