"""The false-alarm set of everyday prompts (`injection_data.everyday_rows`): test-split questions the detector is not
trained on, those also in LLMRouter's train file (exactly or by a run of 8 words) dropped, and duplicates."""

from __future__ import annotations

import json
from pathlib import Path

from turnout.eval.injection_data import everyday_rows


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_everyday_rows_leave_out_what_the_training_split_holds(tmp_path):
    shared = tmp_path
    trained = "Natalia sold clips to 48 of her friends in April and then half as many in May."
    _write(shared / "llmrouter/query_data/default_query_train.jsonl", [{"query": trained, "task_name": "gsm8k"}])
    _write(shared / "llmrouter/query_data/default_query_test.jsonl", [
        {"query": "What is the capital of Peru?", "task_name": "natural_qa"},
        {"query": trained, "task_name": "gsm8k"},
        {"query": "What is the capital of Peru?", "task_name": "natural_qa"}])
    _write(shared / "routellm/evals/gsm8k/test.jsonl", [
        {"question": f"Q: {trained} How many clips did she sell?", "answer": "72"},  # shares an 8-word run
        {"question": "A train leaves at 3 pm and travels 60 km an hour. How far has it gone by 5 pm?", "answer": "120"}])
    rows = everyday_rows(shared)
    assert [r["messages"][0]["content"] for r in rows] == [
        "What is the capital of Peru?", "A train leaves at 3 pm and travels 60 km an hour. How far has it gone by 5 pm?"]
    assert {r["label"] for r in rows} == {0} and {r["kind"] for r in rows} == {"everyday"}
    assert [r["source"] for r in rows] == ["llmrouter:natural_qa", "gsm8k"]


def test_a_shared_folder_without_the_sources_gives_no_rows(tmp_path):
    assert everyday_rows(tmp_path) == []
