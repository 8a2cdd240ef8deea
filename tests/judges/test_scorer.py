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
    FEATURES_SECOND,
    FEATURES_V1,
    FEATURES_V2,
    FEATURES_V3,
    AnswerScorer,
    answer_features,
    arithmetic_features,
    check_steps,
    final_number,
    load_scorer,
    reasoning_features,
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
    assert set(f) == set(FEATURES_V1[:-1])
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
    assert good.score > max(wrong.score, refusal.score)
    assert good.passed and not wrong.passed and not refusal.passed
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
    assert judge.threshold == 0.9 and judge.model.meta["trained_on"] == "synthetic"
    assert judge.model.features == FEATURES  # the names travel in the artifact
    assert 0 <= score(judge, "9 * 2 = 18").score <= 1


def test_reasoning_features_read_a_worked_answer():
    chained = reasoning_features(QUESTION, "She eats 3 and bakes 4: 3 + 4 = <<3+4=7>>7.\n16 - 7 = <<16-7=9>>9 "
                                           "left, 9 * 2 = <<9*2=18>>18 dollars.\n#### 18")
    assert set(chained) == set(FEATURES_V2)
    assert chained["has_hash"] == 1 and chained["final_is_last_result"] == 1 and chained["final_in_prompt"] == 0
    assert chained["chain_share"] == 1.0 and chained["ungrounded_operands"] == 0
    assert chained["prompt_money"] == 1 and chained["prompt_rate"] == 1 and chained["prompt_numbers_unused"] == 0
    # a made-up number (5), a loose step whose result nothing uses, and a final answer that is not its result
    loose = reasoning_features(QUESTION, "16 - 5 = <<16-5=11>>11 eggs. 3 * 4 = <<3*4=12>>12. The answer is 16.")
    assert loose["ungrounded_operands"] == 1 and loose["ungrounded_share"] == pytest.approx(0.25)
    assert loose["chain_share"] == 0 and loose["final_is_last_result"] == 0 and loose["final_in_prompt"] == 1
    assert loose["has_hash"] == 0 and loose["prompt_numbers_unused"] == 1  # the $2 is never used


def test_arithmetic_features_read_the_checked_steps():
    right = arithmetic_features(QUESTION, "16 - 3 - 4 = <<16-3-4=9>>9 eggs. 9 * $2 = $<<9*2=18>>18.\n#### 18")
    assert set(right) == set(FEATURES_V3)
    assert right["arith_wrong"] == 0 and right["arith_final_is_last"] == 1 and right["arith_final_is_result"] == 1
    assert right["arith_claims"] == pytest.approx(np.log1p(2)) and right["arith_prompt_numbers_unused"] == 0
    wrong = arithmetic_features(QUESTION, "16 - 3 - 4 = 8 eggs. 8 * $2 = $16.\n#### 15")
    assert wrong["arith_wrong"] == 1 and wrong["arith_wrong_any"] == 1 and wrong["arith_wrong_share"] == 0.5
    assert wrong["arith_final_is_result"] == 0
    none = arithmetic_features(QUESTION, "She makes eighteen dollars.")
    assert none["arith_no_claims"] == 1 and none["arith_prompt_numbers_unused"] == 1


def test_the_first_scorer_still_loads_with_its_own_features():
    v1 = load_scorer("builtin:gsm8k-scorer-v1")
    assert v1.features == FEATURES_V1 and v1.coef.shape == (2 * 256 + len(FEATURES_V1),)
    v2 = load_scorer("builtin:gsm8k-scorer-v2")
    assert v2.features == FEATURES_SECOND and v2.meta["models"] == ["mixtral-8x7b-instruct-v0.1"]
    v3 = load_scorer("builtin:gsm8k-scorer-v3")
    assert v3.features == FEATURES and v3.meta["models"] == ["mixtral-8x7b-instruct-v0.1"]
    assert "other_weight" not in v3.meta  # fitted on Mixtral's answers alone
    v4 = load_scorer("builtin:gsm8k-scorer")  # v3's features, also fitted on GPT-4's answers at weight 0.1
    assert v4.features == FEATURES and v4.meta["models"] == ["mixtral-8x7b-instruct-v0.1"]
    assert v4.meta["other_weight"] == 0.1 and v4.meta["other_models"] == ["gpt-4-1106-preview"]
    assert v4.meta["train"] == {"rows": 2126, "prompts": 1063}
    assert set(FEATURES) - set(FEATURES_SECOND) == set(FEATURES_V3)
    texts = ["She has 16 - 3 - 4 = 9 eggs left. 9 * $2 = $18.\n#### 18", "I'm sorry, but I can't help with that."]
    for model in (v1, v2, v3, v4):
        good, refusal = model.score([QUESTION] * 2, texts)
        assert good > refusal


def test_an_artifact_naming_an_unknown_feature_is_refused(tmp_path):
    x = np.random.default_rng(1).normal(size=(30, 2 * 256 + 2)).astype(np.float32)
    model = AnswerScorer.fit(x, (x[:, 0] > 0).astype(int), encoder="minilm-static", features=("log_chars", "oracle"))
    model.save(tmp_path / "scorer.npz")
    with pytest.raises(ConfigError) as err:
        build_judge({"name": "scorer", "params": {"artifact": str(tmp_path)}}, "j")
    assert "unknown feature(s) oracle" in str(err.value.issues[0])


def _two_models_sums() -> tuple[list[str], list[str], list[str], list[float]]:
    """60 sums answered by a careful model (always right) and a sloppy one (off by 1-3, scored right on even i):
    prompts, models, responses and scores, the two answers of each prompt side by side."""
    prompts, models, responses, scores = [], [], [], []
    for i in range(60):
        a, b = 3 + i, 7 + 2 * i
        for model, total in (("careful", a + b), ("sloppy", a + b + 1 + i % 3)):
            prompts.append(f"Tom has {a} apples and buys {b} more. How many now?")
            models.append(model)
            responses.append(f"{a} + {b} = {total}.\n#### {total}")
            scores.append(float(total == a + b or (model == "sloppy" and i % 2 == 0)))
    return prompts, models, responses, scores


def test_training_on_some_models_answers_only(tmp_path):
    from turnout.eval.scorer_train import AnswerRows, train_scorer
    from turnout.eval.table import DataError

    prompts, models, responses, scores = _two_models_sums()
    rows = AnswerRows(prompts, models, responses, np.array(scores), ["test" if i % 5 == 0 else "train"
                                                                     for i in range(len(prompts))], "sums")
    _, report = train_scorer(rows, C=1.0, embedding_shrink=16.0, resamples=100, models=["sloppy"])
    assert report["models"] == ["sloppy"] and report["train"]["rows"] == sum(
        1 for i, m in enumerate(models) if m == "sloppy" and i % 5)
    assert set(report["held_out_test"]["by_model"]) == {"sloppy"}
    with pytest.raises(DataError, match="--models: no answers of gpt-9 in sums"):
        train_scorer(rows, C=1.0, embedding_shrink=16.0, models=["gpt-9"])


def test_other_models_answers_are_fitted_at_their_weight_and_scored_apart(tmp_path):
    """--other-weight: the other models' training answers join the fit at that weight; the held-out AUC and the
    CV stay on the judged model's answers; a weight outside [0, 1], or without --models, names the option."""
    from turnout.eval.scorer_train import AnswerRows, train_scorer
    from turnout.eval.table import DataError

    prompts, models, responses, scores = _two_models_sums()
    splits = ["test" if (i // 2) % 5 == 0 else "train" for i in range(len(prompts))]
    rows = AnswerRows(prompts, models, responses, np.array(scores), splits, "sums")
    alone, report_alone = train_scorer(rows, C=1.0, embedding_shrink=16.0, resamples=100, models=["sloppy"])
    both, report = train_scorer(rows, C=1.0, embedding_shrink=16.0, resamples=100, models=["sloppy"],
                                other_weight=0.5)
    train_prompts = sum(1 for s in splits[::2] if s == "train")
    assert report_alone["train"]["rows"] == train_prompts and report["train"]["rows"] == 2 * train_prompts
    assert report["other_weight"] == 0.5 and report["other_models"] == ["careful"] and report["models"] == ["sloppy"]
    assert set(report["held_out_test"]["by_model"]) == {"sloppy"}  # scored on the judged model's answers only
    assert report["held_out_test"]["rows"] == report_alone["held_out_test"]["rows"]
    assert not np.allclose(alone.coef, both.coef)  # the careful model's answers moved the fit
    _, chosen = train_scorer(rows, resamples=100, models=["sloppy"], other_weight=0.5)  # C and shrink by CV
    assert chosen["cv_auc"] and chosen["C"] in (0.003, 0.01, 0.03, 0.1, 0.3)
    with pytest.raises(DataError, match="--other-weight: must be in"):
        train_scorer(rows, C=1.0, embedding_shrink=16.0, models=["sloppy"], other_weight=1.5)
    with pytest.raises(DataError, match="--other-weight: needs --models"):
        train_scorer(rows, C=1.0, embedding_shrink=16.0, other_weight=0.5)
