"""The scorer judge: its features, the shipped builtin:gsm8k-scorer, its config errors."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from turnout.config import ConfigError
from turnout.judges import build_judge
from turnout.models.scorer import (
    FEATURES,
    AnswerScorer,
    answer_features,
    check_steps,
    final_number,
    scorer_path,
)

QUESTION = "Janet has 16 eggs. She eats 3 and bakes with 4. She sells the rest for $2 each. How much does she make?"


def completion(text: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


def score(judge, text: str, question: str = QUESTION):
    return asyncio.run(judge.judge({"messages": [{"role": "user", "content": question}]}, completion(text), None))


def test_arithmetic_steps_are_checked():
    assert check_steps("16 - 3 - 4 = 9 eggs, 9 * $2 = $18") == (2, 0)
    assert check_steps("She has 16 - 7 = 8 left, <<8*2=16>>16") == (2, 1)  # 16 - 7 is 9
    assert check_steps("On 2023-10-01 she had 3 = three") == (0, 0)  # no operator between numbers: not a step


def test_final_number_and_cheap_features():
    assert final_number("so 9 * 2 = 18\n#### 18") == 18.0
    assert final_number("The answer is $1,250.") == 1250.0
    assert final_number("I cannot tell.") is None
    f = answer_features(QUESTION, "16 - 3 - 4 = 9. 9 * 2 = 18.\n#### 18")
    assert set(f) == set(FEATURES[:-1])
    assert f["has_final"] == 1 and f["final_integer"] == 1 and f["step_errors"] == 0
    assert f["prompt_numbers_used"] == pytest.approx(1.0)
    refusal = answer_features(QUESTION, "I'm sorry, but I can't help with that.")
    assert refusal["refusal"] == 1 and refusal["has_final"] == 0


def test_builtin_scorer_ranks_a_correct_answer_above_a_miscalculated_one_and_a_refusal():
    judge = build_judge({"name": "scorer"}, "decisions[0].plan.params.judge")
    good = score(judge, "She has 16 - 3 - 4 = 9 eggs left. 9 * $2 = $18.\n#### 18")
    wrong = score(judge, "She has 16 - 3 - 4 = 12 eggs left. Maybe she sells them for 12 * $2 = $25, "
                         "however I assume some break.\n#### 25.5")
    refusal = score(judge, "I'm sorry, but I can't help with that.")
    assert good.score > wrong.score > refusal.score
    assert good.passed and not refusal.passed
    assert good.detail["final_number"] == 18.0 and 0 <= refusal.score <= 1
    assert score(judge, "").detail["reason"] == "empty answer"


def test_builtin_ships_small_with_its_notice_and_held_out_auc():
    path = scorer_path("builtin:gsm8k-scorer")
    assert path.stat().st_size < 2 * 1024 * 1024
    folder = Path(str(resources.files("turnout.models").joinpath("data/scorers/gsm8k-scorer")))
    assert "Apache-2.0" in (folder / "NOTICE.md").read_text()
    meta = json.loads((folder / "scorer.json").read_text())
    test = meta["held_out_test"]
    assert meta["train"]["prompts"] > 1000 and test["prompts"] > 200  # trained on the train split only
    assert test["auc_ci95"][0] > 0.6  # clearly better than chance on held-out prompts
    assert AnswerScorer.load(path).meta["held_out_test"]["auc"] == pytest.approx(test["auc"])


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError) as err:
        build_judge({"name": "scorer", "params": {"artifact": str(tmp_path / "none")}}, "decisions[0].plan.params.judge")
    assert str(err.value.issues[0]).startswith("decisions[0].plan.params.judge.params.artifact")
    with pytest.raises(ConfigError) as err:
        build_judge({"name": "scorer", "params": {"treshold": 0.3}}, "decisions[0].plan.params.judge")
    assert "treshold" in str(err.value.issues[0]) and "threshold" in str(err.value.issues[0])


def test_a_saved_scorer_loads_from_its_directory(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 2 * 256 + len(FEATURES))).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    model = AnswerScorer.fit(x, y, encoder="minilm-static", C=1.0, meta={"trained_on": "synthetic"})
    model.save(tmp_path / "scorer.npz")
    judge = build_judge({"name": "scorer", "params": {"artifact": str(tmp_path), "threshold": 0.9}}, "j")
    assert judge.threshold == 0.9 and judge.model.meta == {"trained_on": "synthetic"}
    assert 0 <= score(judge, "9 * 2 = 18").score <= 1
