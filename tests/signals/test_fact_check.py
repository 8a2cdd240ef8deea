"""The fact_check signal: factual questions (people, numbers, dates, citations, claims) against writing, code,
opinion, maths and rewriting that mention the same facts; end to end through a real server."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import base_config, explain_route
from turnout.context import RoutingContext
from turnout.signals import signals
from turnout.signals.fact_check import fact_check_score


@pytest.mark.parametrize("text", [
    "Who won the 1998 Tour de France?",
    "when did the first harry potter film come out",
    "How many people live in Lagos?",
    "Give me two peer-reviewed sources on the effect of caffeine on sleep.",
    "Is it true that goldfish have a three-second memory?",
    "Wann ist Goethe gestorben?",
    "¿Cuántos habitantes tiene Lima?",
])
def test_factual_questions_need_checking(text):
    score, cues = fact_check_score(text)
    assert score >= 0.5, cues


@pytest.mark.parametrize("text", [
    "Write a short story about who won the 1998 Tour de France.",
    "Write a Python function that returns the year a person was born from their age.",
    "What do you think of my plan to move to Lagos?",
    "What is 12 times 31?",
    "Translate 'when was the castle built?' into French.",
    "paint, flash, bridesmaid, block, cut, car, draw, swim",
    "Hi there!",
])
def test_look_alikes_need_none(text):
    score, cues = fact_check_score(text)
    assert score < 0.5, cues


def test_the_threshold_param_and_the_cues_in_the_detail():
    def evaluate(threshold, text):
        signal = signals.get("fact_check").from_config("f", {"threshold": threshold}, "signals.f")
        return asyncio.run(signal.evaluate(RoutingContext({"messages": [{"role": "user", "content": text}]})))

    result = evaluate(0.5, "Who was the president of France in 1990?")
    assert result.matched and result.detail["cues"]["factual question word"] > 0 and "a year" in result.detail["cues"]
    assert not evaluate(0.999, "Who was the president of France in 1990?").matched
    assert evaluate(0.5, "").score < 0.5


def test_a_real_server_sends_fact_questions_to_the_strong_model_and_explains_why(serve, upstream):
    config = base_config(upstream.url)
    config["signals"] = {"facts": {"kind": "fact_check", "threshold": 0.6}}
    config["decisions"] = [
        {"name": "grounded", "priority": 60, "when": {"signal": "facts"}, "models": ["strong"]},
        {"name": "default", "priority": 0, "models": ["small"]},
    ]
    server = serve(config)

    def route(text):
        return explain_route(server, text)

    fact = route("Who won the Nobel Prize in Literature in 2016?")
    assert fact["decision"] == "grounded", fact
    explained = {s["name"]: s for s in fact["signals"]}["facts"]
    assert explained["matched"] and explained["score"] >= 0.6 and "cues" in explained["detail"]
    assert route("Write a poem about who won the Nobel Prize in 2016.")["decision"] == "default"


def test_the_first_max_chars_of_the_normalised_text_are_read():
    """NFKC expands some characters (U+FDFA to 18): the text is cut again after it, so 4,000 of them are not
    read as 72,000 characters; the cues are those of the normalised text's first MAX_CHARS."""
    from turnout.signals.fact_check import MAX_CHARS, fact_cues
    text = "\ufb01" * MAX_CHARS + " Who won the 1998 World Cup?"
    assert fact_cues(text) == fact_cues("fi" * (MAX_CHARS // 2))
    assert "a year" not in fact_cues(text)
