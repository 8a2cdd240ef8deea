"""Labelled data for the classifier signals, read from ../shared/data (see its READMEs for licences).

Every loader returns (train, test) lists of (text, label) with a fixed split, so training and evaluation
always see the same held-out rows."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

Examples = list[tuple[str, str]]

# keyed by the data's own task names (LLMRouter's README shortens two of them to "mgsm" and "logicgrid")
LLMROUTER_TASK_DOMAINS = {
    "gsm8k": "math", "math": "math", "agentverse-mgsm": "math", "mbpp": "code", "human_eval": "code",
    "gpqa": "science", "arc_challenge": "science", "openbook_qa": "science", "commonsense_qa": "general",
    "natural_qa": "general", "trivia_qa": "general", "agentverse-logicgrid": "reasoning", "commongen": "writing",
}
# tasks left out on purpose, and why; any other unmapped task name is an error, never a silent drop
LLMROUTER_TASKS_WITHOUT_DOMAIN = {
    "mmlu": "57 subjects under one task name and no subject column; MMLU comes per subject from RouteLLM's files",
}
MMLU_SUBJECT_DOMAINS = {
    "math": ["abstract_algebra", "college_mathematics", "elementary_mathematics", "high_school_mathematics",
             "high_school_statistics"],
    "code": ["college_computer_science", "computer_security", "high_school_computer_science", "machine_learning"],
    "science": ["astronomy", "college_biology", "college_chemistry", "college_physics", "conceptual_physics",
                "electrical_engineering", "high_school_biology", "high_school_chemistry", "high_school_physics"],
    "health": ["anatomy", "clinical_knowledge", "college_medicine", "human_aging", "medical_genetics", "nutrition",
               "professional_medicine", "virology"],
    "law": ["international_law", "jurisprudence", "professional_law"],
    "business": ["business_ethics", "management", "marketing", "professional_accounting", "econometrics",
                 "high_school_macroeconomics", "high_school_microeconomics"],
    "humanities": ["formal_logic", "high_school_european_history", "high_school_us_history",
                   "high_school_world_history", "logical_fallacies", "moral_disputes", "moral_scenarios", "philosophy",
                   "prehistory", "world_religions"],
    "social_science": ["high_school_geography", "high_school_government_and_politics", "high_school_psychology",
                       "human_sexuality", "professional_psychology", "public_relations", "security_studies",
                       "sociology", "us_foreign_policy"],
    "general": ["global_facts", "miscellaneous"],
}
SMALL_MODELS = ("gemma-2-9b-it", "llama-3.1-8b-instruct", "mistral-7b-instruct-v0.3", "qwen2.5-7b-instruct")


def held_out(text: str, percent: int = 20) -> bool:
    """A deterministic split by content: the same prompt always lands on the same side."""
    return int(hashlib.sha1(text.encode("utf-8")).hexdigest()[:8], 16) % 100 < percent


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _dedupe(rows: Examples) -> Examples:
    seen: set[str] = set()
    out = []
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            out.append((text, label))
    return out


def task_domain(task: str) -> str | None:
    """The domain of an LLMRouter task; None for a task left out on purpose."""
    if task in LLMROUTER_TASK_DOMAINS:
        return LLMROUTER_TASK_DOMAINS[task]
    if task in LLMROUTER_TASKS_WITHOUT_DOMAIN:
        return None
    raise ValueError(f"LLMRouter task {task!r} has no domain: add it to LLMROUTER_TASK_DOMAINS "
                     f"(or to LLMROUTER_TASKS_WITHOUT_DOMAIN with the reason)")


def domain_examples(shared: Path, per_subject: int = 120, per_task: int = 200) -> tuple[Examples, Examples]:
    """LLMRouter tasks and MMLU subjects mapped to domains. Each LLMRouter task is capped at `per_task` training
    rows: the open-domain QA sets (NaturalQA, TriviaQA, CommonsenseQA) hold questions of every subject, and
    uncapped they teach the classifier to call everything 'general'."""
    train: Examples = []
    test: Examples = []
    per_task_seen: dict[str, int] = {}
    for row in _csv(shared / "llmrouter/routing_scores_merged.csv"):
        domain = task_domain(row["task_name"])
        if domain is None or row["in_train_and_test"] == "True":
            continue
        if row["split"] == "test":
            test.append((row["query"], domain))
        elif per_task_seen.get(row["task_name"], 0) < per_task:
            per_task_seen[row["task_name"]] = per_task_seen.get(row["task_name"], 0) + 1
            train.append((row["query"], domain))
    subject_domain = {s: d for d, subjects in MMLU_SUBJECT_DOMAINS.items() for s in subjects}
    for path in sorted((shared / "routellm/evals/mmlu/responses").glob("mmlu_*.csv")):
        subject = path.stem[len("mmlu_"):]
        if subject not in subject_domain:
            raise ValueError(f"MMLU subject {subject!r} has no domain: add it to MMLU_SUBJECT_DOMAINS")
        domain = subject_domain[subject]
        for row in _csv(path)[:per_subject]:  # cap big subjects (professional_law has 1,534)
            (test if held_out(row["prompt"]) else train).append((row["prompt"], domain))
    train, test = _dedupe(train), _dedupe(test)
    test_texts = {t for t, _ in test}
    return [x for x in train if x[0] not in test_texts], test


def complexity_examples(shared: Path) -> tuple[Examples, Examples]:
    """'hard' when the small open models fail on average (mean score < 0.5), else 'easy'."""
    train: Examples = []
    test: Examples = []
    for row in _csv(shared / "llmrouter/routing_scores_merged.csv"):
        if row["in_train_and_test"] == "True" and row["split"] == "test":
            continue
        mean = sum(float(row[f"score__{m}"]) for m in SMALL_MODELS) / len(SMALL_MODELS)
        (test if row["split"] == "test" else train).append((row["query"], "hard" if mean < 0.5 else "easy"))
    return _dedupe(train), _dedupe(test)


def jailbreak_examples(shared: Path) -> tuple[Examples, Examples]:
    base = shared / "jailbreak/default"
    train = _dedupe([(r["prompt"], r["type"]) for r in _csv(base / "jailbreak_dataset_train.csv")])
    test = _dedupe([(r["prompt"], r["type"]) for r in _csv(base / "jailbreak_dataset_test.csv")])
    train_texts = {t for t, _ in train}
    return train, [x for x in test if x[0] not in train_texts]


def pii_examples(path: Path) -> list[dict]:
    """The project's labelled PII set: JSONL of {"text", "spans": [{"type", "value"}]}."""
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


# the LLMRouter tasks whose prompts need facts checked (open-domain factual questions) and those that need none
# (maths to compute, code, a logic puzzle, writing from given words); the exam-style tasks (GPQA, MMLU, ARC,
# OpenBookQA, CommonsenseQA) are left out: a multiple-choice science question is neither clearly one nor the other
FACT_TASKS = {"natural_qa": 1, "trivia_qa": 1, "gsm8k": 0, "agentverse-mgsm": 0, "math": 0, "mbpp": 0,
              "human_eval": 0, "agentverse-logicgrid": 0, "commongen": 0}


def llmrouter_rows(shared: Path, split: str) -> list[dict[str, str]]:
    """LLMRouter rows of one split ('train' or 'test'), without the test rows that leak into train."""
    return [r for r in _csv(shared / "llmrouter/routing_scores_merged.csv")
            if r["split"] == split and not (split == "test" and r["in_train_and_test"] == "True")]


def fact_check_examples(shared: Path, split: str = "test") -> list[tuple[str, int]]:
    """LLMRouter prompts labelled by task (FACT_TASKS): 1 = needs facts checked."""
    rows = [(r["query"], FACT_TASKS[r["task_name"]]) for r in llmrouter_rows(shared, split)
            if r["task_name"] in FACT_TASKS]
    return [(t, label) for t, label in _dedupe([(t, str(label)) for t, label in rows]) for label in [int(label)]]


def modality_examples(shared: Path, split: str = "test") -> list[str]:
    """Every LLMRouter prompt: none asks for an image, audio or video (they are benchmark questions answered in
    text), so each detection on them is a false alarm."""
    return [t for t, _ in _dedupe([(r["query"], "") for r in llmrouter_rows(shared, split)])]


def hand_written(name: str, split: str) -> list[dict]:
    """turnout/eval/data/NAME/SPLIT.jsonl (see the README there)."""
    path = Path(__file__).resolve().parent / "data" / name / f"{split}.jsonl"
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def domain_sources(shared: Path) -> dict[str, str]:
    """Prompt → the task or MMLU subject it comes from ("llmrouter:gsm8k", "mmlu:nutrition"): the finer classes
    the shipped domain model learns (a domain is the sum of its classes' probabilities), and the grouping of
    the cross-dataset check."""
    source: dict[str, str] = {}
    for row in _csv(shared / "llmrouter/routing_scores_merged.csv"):
        if task_domain(row["task_name"]) is not None:
            source.setdefault(row["query"], f"llmrouter:{row['task_name']}")
    for path in sorted((shared / "routellm/evals/mmlu/responses").glob("mmlu_*.csv")):
        for row in _csv(path):
            source.setdefault(row["prompt"], f"mmlu:{path.stem[len('mmlu_'):]}")
    return source
