"""The grounded judge: per-sentence support against the request's context, and its labelled set."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from turnout.config import ConfigError
from turnout.judges import build_judge
from turnout.judges.grounded import content_words, context_text, split_sentences

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ("The Kessler valve (model KV-200) must be serviced every 18 months. Only technicians certified by the "
           "manufacturer may open the valve housing. The warranty lasts five years from the date of installation.")


def judge_of(**params):
    return build_judge({"name": "grounded", "params": params}, "decisions[0].plan.params.judge")


def check(judge, answer: str, messages=None):
    messages = messages or [{"role": "system", "content": CONTEXT}, {"role": "user", "content": "How to maintain it?"}]
    completion = {"choices": [{"message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}]}
    return asyncio.run(judge.judge({"messages": messages}, completion, None))


def test_supported_sentences_pass_and_each_kind_of_unsupported_one_is_flagged_with_its_reason():
    verdict = check(judge_of(), "The KV-200 must be serviced every 18 months. The valve housing may be opened only "
                                "by certified technicians. The warranty lasts 45 years. Any technician may not open "
                                "it without problems. It was designed by Hiroshi Tanaka in Osaka.")
    sentences = verdict.detail["sentences"]
    assert [s["supported"] for s in sentences] == [True, True, False, False, False]
    assert "numbers not in the context: 45" in sentences[2]["reasons"][0]
    assert any("names not in the context" in r for r in sentences[4]["reasons"])
    assert not verdict.passed and verdict.score == min(s["support"] for s in sentences)
    assert verdict.detail["supported_share"] == pytest.approx(0.4)


def test_a_number_from_another_sentence_of_the_context_is_flagged():
    sentences = check(judge_of(), "The valve must be serviced every 5 years.").detail["sentences"]
    assert not sentences[0]["supported"] and "another part of the context" in sentences[0]["reasons"][0]


def test_context_comes_from_the_roles_named_and_tool_json_is_flattened():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is order A-1?"},
                {"role": "tool", "tool_call_id": "c1", "content": json.dumps({"order_status": "shipped",
                                                                               "carrier": "Nordpost"})}]
    assert "order status shipped." in context_text({"messages": messages}, ["tool"])
    assert "Be brief" not in context_text({"messages": messages}, ["tool"])
    verdict = check(judge_of(sources=["tool"]), "Your order has shipped with Nordpost.", messages)
    assert verdict.passed
    assert not check(judge_of(sources=["tool"]), "Your order was lost by Royal Mail.", messages).passed


def test_hostile_sizes_are_bounded_and_still_judged():
    """A tool result nested past Python's recursion limit is read as text (the stdlib parser raised
    RecursionError); an answer of thousands of claims against a context of thousands of sentences is compared
    claim by claim through word postings (each claim was a Python loop over every sentence: 2,000 × 2,000 took
    2.2 s), only the first MAX_CLAIMS are scored and the detail counts the rest."""
    from turnout.judges.grounded import MAX_CHUNKS, MAX_CLAIMS, Support
    deep = "[" * 5000 + '"the valve is blue"' + "]" * 5000
    assert context_text({"messages": [{"role": "tool", "content": deep}]}, ["tool"]) == deep
    nested = json.dumps({"a": {"b": {"c": "shipped"}}})
    assert context_text({"messages": [{"role": "tool", "content": nested}]}, ["tool"]) == "a b c shipped."
    context = " ".join(f"Unit {i} was serviced in March." for i in range(3 * MAX_CHUNKS))
    answer = " ".join(["Unit 7 was serviced in March.", "Unit 8 was painted by Hiroshi Tanaka."] * MAX_CLAIMS)
    messages = [{"role": "system", "content": context}, {"role": "user", "content": "Which units?"}]
    verdict = check(judge_of(), answer, messages)
    sentences = verdict.detail["sentences"]
    assert len(sentences) == MAX_CLAIMS and verdict.detail["unchecked_claims"] == MAX_CLAIMS
    assert sentences[0]["supported"] and sentences[0]["closest"] == "Unit 7 was serviced in March."
    assert not sentences[1]["supported"] and any("Hiroshi, Tanaka" in r for r in sentences[1]["reasons"])
    support = Support(judge_of().params, context)
    assert len(support.chunks) == MAX_CHUNKS and support.chunks[-1].endswith(f"Unit {3 * MAX_CHUNKS - 1} was "
                                                                              "serviced in March.")


def test_no_context_and_no_claims():
    bare = [{"role": "user", "content": "hi"}]
    assert check(judge_of(sources=["system"]), "Paris is in France.", bare).detail["reason"] == \
        "no context to check against"
    assert not check(judge_of(sources=["system"], no_context="fail"), "Paris is in France.", bare).passed
    assert check(judge_of(), "Thanks!").detail["reason"] == "no claims to check"


def test_sentences_and_words():
    assert split_sentences("It costs $1.3 million. it was built in 1998!\n- A list item") == [
        "It costs $1.3 million.", "it was built in 1998!", "A list item"]
    assert content_words("The lake is twelve metres deep") == ["lake", "12", "metr", "deep"]


def test_params_are_checked_with_the_field_named():
    with pytest.raises(ConfigError) as err:
        judge_of(sources=["system", "robot"])
    assert str(err.value.issues[0]).startswith("decisions[0].plan.params.judge.params.sources")
    with pytest.raises(ConfigError) as err:
        judge_of(lexical_weight=2)
    assert "lexical_weight" in str(err.value.issues[0])


def test_labelled_final_split_figures_hold():
    """The held-out figures docs/judges.md reports (precision 0.65, recall 0.37 of 'unsupported')."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks/grounded.py"), "--final"], capture_output=True,
                         text=True, timeout=120, check=True)
    overall = json.loads(out.stdout)["overall"]
    assert overall["sentences"] == 60 and overall["unsupported"] == 30
    assert overall["precision"] == pytest.approx(0.6471, abs=1e-3)
    assert overall["recall"] == pytest.approx(0.3667, abs=1e-3)
