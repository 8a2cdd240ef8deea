"""The arithmetic checker (turnout.models.arithmetic), the `arithmetic` judge and the `ensemble` judge on
hand-written answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from turnout.config import ConfigError
from turnout.judges import build_judge
from turnout.judges.ensemble import rescaled
from turnout.models.arithmetic import check, evaluate, final_answer

PATH = "decisions[0].plan.params.judge"
REQUEST = {"messages": [{"role": "user", "content": "Tom buys 3 bags of 4 apples and eats 2. How many are left?"}]}


def completion(content: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def judge(spec: dict[str, Any], content: str, env: Any = None):
    return asyncio.run(build_judge(spec, PATH).judge(REQUEST, completion(content), env))


def claims(text: str) -> list[tuple[float, float, bool]]:
    return [(round(c.value, 4), c.claimed, c.correct) for c in check(text).claims]


@pytest.mark.parametrize("text, expected", [
    ("12 * 3 = 36", [(36.0, 36.0, True)]),
    ("12 * 3 = 38", [(36.0, 38.0, False)]),
    ("$4 + $5 = $9", [(9.0, 9.0, True)]),
    ("24 x $125 = $3,000 in all", [(3000.0, 3000.0, True)]),
    ("He had 2 x 6 = <<2*6=12>>12 sessions", [(12.0, 12.0, True)]),  # stated twice, counted once
    ("so he has 2/3 * 24 = <<2/3*24=32>>32 spoons", [(16.0, 32.0, False)]),
    ("3/4 of 20 is 15", [(15.0, 15.0, True)]),
    ("3/4 of 20 is 16", [(15.0, 16.0, False)]),
    ("20% of 50 is 10, and half of 12 is 6", [(10.0, 10.0, True), (6.0, 6.0, True)]),
    ("(4 / 20) * 100 = 20%", [(20.0, 20.0, True)]),
    ("4 / 20 = 20%", [(0.2, 20.0, True)]),  # a percent states its share
    ("3 days * 24 hours/day = 72 hours", [(72.0, 72.0, True)]),  # units between the numbers; /day is "per"
    ("5 silos * $220/silo = $1100/day", [(1100.0, 1100.0, True)]),
    ("12 times 3 equals 36. 4 plus 5 is 10", [(36.0, 36.0, True), (9.0, 10.0, False)]),
    ("100 / 3 = 33.33, and 10 / 3 ≈ 3", [(33.3333, 33.33, True), (3.3333, 3.0, True)]),  # written to a precision
    ("100 / 3 = 33", [(33.3333, 33.0, False)]),  # a whole number must be exact
    ("200 - (90 + 45) = 200 - 135 = 65 books", [(65.0, 200.0, True), (65.0, 65.0, True)]),  # a chain
    ("4 / 1/6 = 24 lemons", [(24.0, 24.0, True)]),  # a tight fraction is one operand
    ("\\( 3 \\times 4 = 12 \\)", [(12.0, 12.0, True)]),  # LaTeX
    ("6x + 7 = 37, so x = 5", []),  # algebra over a variable is not arithmetic
    ("In 2019 there were 5 cats.", []),
])
def test_the_checker_reads_each_kind_of_claim(text, expected):
    assert claims(text) == expected


def test_the_evaluator_is_arithmetic_only():
    assert evaluate("2 * (3 + 4) / 7") == 2.0
    assert evaluate("1 / 0") is None
    for hostile in ("__import__('os').system('true')", "2 ** 100000", "[1] * 9", "a + 1", "1 if 1 else 2"):
        assert evaluate(hostile) is None


def test_the_final_answer_and_the_last_result():
    result = check("3 * 4 = 12 apples.\n12 - 2 = 10.\n#### 10")
    assert result.final == 10.0 and result.last_result == 10.0 and result.final_is_last_result
    assert final_answer("So the answer is $1,250.") == 1250.0
    assert not check("3 * 4 = 12 apples.\n#### 11").final_is_a_result


def test_arithmetic_judge_fails_a_wrong_step_and_says_which():
    verdict = judge({"name": "arithmetic"}, "3 * 4 = 14 apples.\n14 - 2 = 12.\n#### 12")
    assert not verdict.passed and verdict.score == 0.0 and verdict.detail["reason"] == "wrong step"
    assert verdict.detail["wrong"] == [{"step": "3.0 * 4.0 = 14 apples.", "is": 12.0}]
    assert verdict.detail["steps"] == 2
    right = judge({"name": "arithmetic"}, "3 * 4 = 12 apples.\n12 - 2 = 10.\n#### 10")
    assert right.passed and right.score == 1.0 and right.detail["reason"] == "ok"


def test_arithmetic_judge_options():
    unmatched = "3 * 4 = 12 apples, less the 2 she ate.\n#### 10"
    assert judge({"name": "arithmetic"}, unmatched).passed
    strict = judge({"name": "arithmetic", "params": {"require_final": True}}, unmatched)
    assert not strict.passed and strict.score == 0.25
    assert judge({"name": "arithmetic"}, "Ten apples are left.").passed  # no steps: pass by default
    assert not judge({"name": "arithmetic", "params": {"no_steps": "fail"}}, "Ten apples are left.").passed
    assert not judge({"name": "arithmetic"}, "").passed
    loose = {"name": "arithmetic", "params": {"rel_tol": 0.1}}
    assert judge(loose, "100 / 3 = 33").passed and not judge({"name": "arithmetic"}, "100 / 3 = 33").passed


def test_a_long_answer_is_checked_off_the_event_loop():
    text = "Step: 3 * 4 = 12.\n" * 200 + "Then 12 - 2 = 11.\n#### 11"
    verdict = judge({"name": "arithmetic"}, text)
    assert not verdict.passed and verdict.detail["wrong"][0]["is"] == 10.0


def test_arithmetic_config_errors_name_the_field():
    with pytest.raises(ConfigError) as caught:
        build_judge({"name": "arithmetic", "params": {"no_steps": "maybe", "abs_tol": -1}}, PATH)
    text = [str(i) for i in caught.value.issues]
    assert any(t.startswith(f"{PATH}.params.no_steps: ") for t in text)
    assert any(t.startswith(f"{PATH}.params.abs_tol: ") for t in text)


class YesNo:
    """A verifier env: answers each ask with the next reply, and counts the asks."""

    def __init__(self, *replies: str) -> None:
        self.replies, self.asked = list(replies), 0

    async def ask(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        self.asked += 1
        return completion(self.replies.pop(0))

    async def samples(self, k: int) -> list[dict[str, Any]]:
        return []


RIGHT, WRONG = "3 * 4 = 12 apples.\n12 - 2 = 10.\n#### 10", "3 * 4 = 14 apples.\n14 - 2 = 12.\n#### 12"
VERIFIER = {"name": "verifier", "params": {"model": "judge"}}


def test_ensemble_all_stops_at_the_first_judge_that_fails():
    spec = {"name": "ensemble", "params": {"judges": [{"name": "arithmetic"}, VERIFIER]}}
    env = YesNo("yes")
    verdict = judge(spec, WRONG, env)
    assert not verdict.passed and env.asked == 0  # the verifier was not asked, nor billed
    assert [j["judge"] for j in verdict.detail["judges"]] == ["arithmetic"]
    assert judge(spec, RIGHT, YesNo("yes")).passed
    assert not judge(spec, RIGHT, YesNo("no")).passed


def test_ensemble_any_and_mean():
    any_spec = {"name": "ensemble", "params": {"rule": "any", "judges": [{"name": "arithmetic"}, VERIFIER]}}
    env = YesNo("yes")
    assert judge(any_spec, RIGHT, env).passed and env.asked == 0  # the first passed: enough
    assert judge(any_spec, WRONG, YesNo("yes")).passed
    assert not judge(any_spec, WRONG, YesNo("no")).passed
    mean = {"name": "ensemble", "params": {"rule": "mean", "threshold": 0.6, "weights": [2, 1],
                                           "judges": [{"name": "arithmetic"}, VERIFIER]}}
    verdict = judge(mean, RIGHT, YesNo("no"))  # (2 * 1 + 1 * 0) / 3
    assert verdict.score == pytest.approx(2 / 3) and verdict.passed
    assert not judge(mean, WRONG, YesNo("yes")).passed  # 1 / 3


def test_ensemble_scores_agree_with_its_verdicts():
    for score, threshold in ((0.3, 0.6), (0.6, 0.6), (0.9, 0.6), (0.0, 0.0), (1.0, 1.0), (0.99, 1.0)):
        assert (rescaled(score, threshold) >= 0.5) == (score >= threshold)
    spec = {"name": "ensemble", "params": {"judges": [
        {"name": "arithmetic"}, {"name": "logprob", "params": {"threshold": 0.9}}]}}
    built = build_judge(spec, PATH)
    assert built.needs_logprobs and built.request_fields() == {"logprobs": True}


def test_ensemble_config_errors_name_the_field():
    cases = [
        ({"judges": [{"name": "arithmetic"}], "threshold": 0.3}, f"{PATH}.params.threshold: only with rule mean"),
        ({"judges": [{"name": "arithmetic"}], "weights": [1.0]}, f"{PATH}.params.weights: only with rule mean"),
        ({"judges": []}, f"{PATH}.params.judges: List should have at least 1 item"),
        ({"judges": [{"name": "arithmetic"}, {"name": "formt"}]},
         f"{PATH}.params.judges[1].name: unknown judge 'formt'; did you mean 'format'?"),
        ({"judges": [{"name": "arithmetic", "params": {"no_step": "fail"}}]},
         f"{PATH}.params.judges[0].params: unknown key 'no_step'"),
        ({"judges": [{"name": "arithmetic"}], "rule": "most"}, f"{PATH}.params.rule: Input should be 'all'"),
    ]
    for params, expected in cases:
        with pytest.raises(ConfigError) as caught:
            build_judge({"name": "ensemble", "params": params}, PATH)
        assert any(str(i).startswith(expected) for i in caught.value.issues), (params, caught.value.issues)
