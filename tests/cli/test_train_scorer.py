"""`turnout train-scorer`, run as a user runs it, on a table with a response column."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from turnout.judges import build_judge


def turnout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "turnout.cli", *args], capture_output=True, text=True, timeout=300,
                          check=False,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def write_table(path: Path, n: int = 90) -> None:
    """Two models' answers to simple sums: one adds correctly, the other is off by one in its own steps."""
    with path.open("w") as f:
        for i in range(n):
            a, b = 3 + i, 7 + 2 * i
            prompt = f"Tom has {a} apples and buys {b} more. How many apples does Tom have now?"
            for model, total in (("careful", a + b), ("sloppy", a + b + 1 + i % 3)):
                answer = f"Tom starts with {a} apples and buys {b}, so {a} + {b} = {total} apples.\n#### {total}"
                f.write(json.dumps({"prompt": prompt, "model": model, "score": float(total == a + b),
                                    "cost_usd": 0.001, "response": answer}) + "\n")


def test_train_scorer_writes_an_artifact_the_judge_serves(tmp_path):
    data, out = tmp_path / "answers.jsonl", tmp_path / "scorer"
    write_table(data)
    result = turnout("train-scorer", "--data", str(data), "--out", str(out), "--resamples", "100")
    assert result.returncode == 0, result.stderr
    assert "held-out AUC" in result.stdout
    report = json.loads((out / "scorer.json").read_text())
    assert report["held_out_test"]["auc"] > 0.9  # the arithmetic check alone separates these
    assert report["train"]["prompts"] + report["held_out_test"]["prompts"] == 90  # split by prompt
    judge = build_judge({"name": "scorer", "params": {"artifact": str(out)}}, "j")
    request = {"messages": [{"role": "user", "content": "Tom has 5 apples and buys 9 more. How many apples?"}]}

    def score(text: str) -> float:
        completion = {"choices": [{"message": {"role": "assistant", "content": text}}]}
        return asyncio.run(judge.judge(request, completion, None)).score  # type: ignore[arg-type]

    assert score("5 + 9 = 14 apples.\n#### 14") > score("5 + 9 = 15 apples.\n#### 15")


def test_train_scorer_errors_name_the_problem(tmp_path):
    bad = tmp_path / "no_response.csv"
    bad.write_text("prompt,model,score,cost_usd\nq,m,1,0.1\n")
    result = turnout("train-scorer", "--data", str(bad), "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "missing column(s) response" in result.stderr
    wrong = tmp_path / "score.jsonl"
    wrong.write_text(json.dumps({"prompt": "q", "model": "m", "score": 3, "response": "r"}) + "\n")
    result = turnout("train-scorer", "--data", str(wrong), "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "row 1: column 'score' must be in [0, 1]" in result.stderr
    result = turnout("train-scorer", "--data", "nowhere.csv", "--out", str(tmp_path / "x"))
    assert result.returncode == 1 and "neither 'gsm8k' nor an existing file" in result.stderr
    result = turnout("train-scorer", "--data", str(wrong), "--out", str(tmp_path / "x"), "--encoder", "bert")
    assert result.returncode == 1 and "--encoder: unknown 'bert'" in result.stderr
