"""RoutingTable loading: the generic long and wide formats, clear errors, and the shared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from turnout.eval.datasets import load_named
from turnout.eval.table import DataError, load_table

SHIPPED = Path(__file__).resolve().parents[1] / "data" / "shared"  # a sample, see its README
FULL = Path(__file__).resolve().parents[3] / "shared" / "data"
DATA = [pytest.param(SHIPPED, id="shipped-sample")] + ([pytest.param(FULL, id="full")] if FULL.exists() else [])


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def test_long_csv(tmp_path):
    table = load_table(write_csv(tmp_path / "t.csv", """
prompt,model,score,cost_usd,task,split
what is 2+2,small,1,0.001,math,train
what is 2+2,big,1,0.01,math,train
prove fermat,small,0,0.002,math,test
prove fermat,big,0.5,0.02,math,test
"""))
    assert table.models == ["small", "big"] and table.prompts == ["what is 2+2", "prove fermat"]
    assert np.array_equal(table.scores, [[1, 1], [0, 0.5]]) and table.splits == ["train", "test"]
    assert len(table.split("test")) == 1 and table.split("test").costs[0, 1] == 0.02


def test_long_jsonl_without_split_gets_a_deterministic_one(tmp_path):
    rows = [{"prompt": f"q{i}", "model": m, "score": 1, "cost_usd": 0.1} for i in range(200) for m in ("a", "b")]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    first, second = load_table(path), load_table(path)
    assert first.splits == second.splits and 20 < first.splits.count("test") < 70


def test_wide_form(tmp_path):
    table = load_table(write_csv(tmp_path / "w.csv", """
prompt,small,score__big
q1,1,0
q2,0,1
"""), costs={"small": 0.001, "big": 0.01})
    assert table.models == ["small", "big"] and np.array_equal(table.scores, [[1, 0], [0, 1]])


@pytest.mark.parametrize("text, message", [
    ("prompt,model,score\nq,a,1", "missing column(s) cost_usd"),
    ("prompt,model,score,cost_usd\nq,a,high,0.1", "row 2: column 'score' must be a number, got 'high'"),
    ("prompt,model,score,cost_usd\nq,a,1.5,0.1", "row 2: column 'score' must be in [0, 1]"),
    ("prompt,model,score,cost_usd\nq,a,1,0.1\nq,b,1,0.1\nr,a,1,0.1", "1 (prompt, model) pairs have no row, e.g. model 'b'"),
    ("prompt,model,score,cost_usd\nq,a,1,0.1\nq,a,0,0.1", "row 3: duplicate row"),
    ("prompt,model,score,cost_usd,split\nq,a,1,0.1,later", "column 'split' must be train/test/validation"),
])
def test_bad_files_say_where_and_why(tmp_path, text, message):
    with pytest.raises(DataError) as info:
        load_table(write_csv(tmp_path / "bad.csv", text))
    assert message in str(info.value)


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown format"):
        load_table(write_csv(tmp_path / "x.txt", "a"))
    with pytest.raises(DataError, match="cannot read"):
        load_table(tmp_path / "nope.csv")


@pytest.mark.parametrize("shared", DATA)
def test_shared_datasets_load_without_leaks(shared):
    for name, models in (("llmrouter", 9), ("mmlu", 2), ("gsm8k", 2), ("mt-bench", 2)):
        table = load_named(name, shared)
        assert len(table.models) == models and (table.scores >= 0).all() and (table.scores <= 1).all()
        assert (table.costs > 0).all()
        train, test = set(table.split("train").prompts), set(table.split("test").prompts)
        assert train and test and not train & test, name
