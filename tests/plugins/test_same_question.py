"""The near-miss rules after the embedding, and the semantic cache's figures on the project's paraphrase pairs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnout.context import RoutingContext
from turnout.plugins.same_question import judge, same_question, synonym_forms
from turnout.plugins.semantic_cache import SemanticCacheParams, SemanticCachePlugin

PAIRS = Path(__file__).resolve().parents[1] / "data" / "paraphrases.jsonl"


@pytest.mark.parametrize("a, b", [
    ("What is 15% of 200?", "What is 15% of 300?"),
    ("What year did World War II end?", "What year did World War I end?"),
    ("Who was the first person on the Moon?", "Who was the second person on the Moon?"),
    ("Convert 100 Fahrenheit to Celsius", "Convert 100 Celsius to Fahrenheit"),  # moved
    ("When was the Eiffel Tower built?", "Who built the Eiffel Tower?"),  # asks for another thing
    ("How do I sort a dictionary by value in Python?", "How do I sort a dictionary by key in Python?"),  # swapped
    ("Give me a synonym for 'happy'.", "Give me an antonym for 'happy'."),  # swapped, the article follows
    ("What is the longest river in the world?", "What is the longest river in Europe?"),
    ("How many days are in a leap year?", "How many days are in a year?"),  # a qualifier
    ("What is the square of 144?", "What is the square root of 144?"),
    ("How do I undo a commit that I already pushed?", "How do I undo a commit that I haven't pushed yet?"),  # negated
    ("How do I export my contacts from Outlook?", "How do I import my contacts into Outlook?"),  # swapped, relation too
    ("How do I turn off notifications?", "How do I turn on notifications?"),
    ("Explain how a bill becomes a law in the US.", "Explain how a bill becomes a law in the UK."),  # US is no pronoun
    ("Why do leaves change color in autumn?", "Why do leaves fall in autumn?"),  # two words for one
])
def test_near_misses(a, b):
    assert not same_question(a, b) and not same_question(b, a)


@pytest.mark.parametrize("a, b", [
    ("What year did World War II end?", "When did the Second World War end?"),
    ("How do I reverse a list in Python?", "What's the way to reverse a Python list?"),
    ("Who invented the telephone?", "Who was the inventor of the telephone?"),  # forms of one word
    ("How do I merge two dictionaries?", "How can I merge two dicts?"),
    ("What is the population of Japan?", "What is Japan's population?"),  # moved, but the frame changed
    ("How do I calculate compound interest?", "What's the formula for compound interest?"),  # the frame changed
    ("Explain photosynthesis.", "Explain photosynthesis."),
])
def test_rephrasings(a, b):
    assert same_question(a, b) and same_question(b, a)


_WORDS = ("how what is the a of to in do i can you my invent inventor invention dict dictionaries key value sort "
          "python not 2 II second who when write compose list US it").split()


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), max_size=8).map(" ".join),
       st.lists(st.sampled_from(_WORDS), max_size=8).map(" ".join))
def test_the_judgement_is_symmetric_and_reflexive(a, b):
    assert same_question(a, a)
    assert same_question(a, b) == same_question(b, a)


def test_declared_synonyms_allow_the_swap():
    synonyms = synonym_forms([["Kubernetes", "K8s"], ["cancel", "stop", "end"]])
    a, b = "How do I restart a pod in k8s?", "How do I restart a pod in Kubernetes?"
    assert not same_question(a, b) and same_question(a, b, synonyms)
    assert same_question("How do I cancel my plan?", "How do I end my plan?", synonyms)
    assert not same_question("How do I cancel my plan?", "How do I pause my plan?", synonyms)


@pytest.mark.parametrize("groups, complaint", [
    ([["set up", "install"]], "single words"),
    ([["k8s"]], "two words or more"),
])
def test_synonyms_are_checked_when_the_config_loads(groups, complaint):
    with pytest.raises(ValueError, match=complaint):
        SemanticCacheParams(synonyms=groups)


async def _cache_hits(rows: list[dict], **params) -> list[bool]:
    plugin = SemanticCachePlugin(SemanticCacheParams(tenant_header="x-pair", **params))
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop"}]}
    hits = []
    for i, row in enumerate(rows):
        first, second = (RoutingContext({"messages": [{"role": "user", "content": text}]}, headers={"x-pair": str(i)})
                         for text in (row["a"], row["b"]))
        for ctx in (first, second):
            ctx.decision, ctx.model = "default", "m"
        await plugin.before(first)
        await plugin.after(first, answer)
        hits.append(await plugin.before(second) is not None)
    return hits


def _rates(hits: list[bool], rows: list[dict]) -> tuple[float, float]:
    true_hits = sum(hit and r["same"] for hit, r in zip(hits, rows))
    return true_hits / sum(r["same"] for r in rows), true_hits / max(sum(hits), 1)


def test_the_frame_judge_meets_the_old_target_on_the_old_set():
    """Issue 6's figure, kept for the side-by-side: on tests/data/paraphrases.jsonl (near misses written in one frame)
    the `frame` judge with minilm-onnx at 0.85 reaches hit rate >= 80 % at precision >= 98 % on every split."""
    rows = [json.loads(line) for line in PAIRS.read_text(encoding="utf-8").splitlines() if line.strip()]
    hits = asyncio.run(_cache_hits(rows, encoder="minilm-onnx", threshold=0.85, judge="frame"))
    for split in sorted({r["split"] for r in rows}):
        index = [i for i, r in enumerate(rows) if r["split"] == split]
        hit_rate, precision = _rates([hits[i] for i in index], [rows[i] for i in index])
        assert hit_rate >= 0.80 and precision >= 0.98, (split, hit_rate, precision)


NEW_PAIRS = Path(__file__).resolve().parents[1] / "data" / "cache_pairs"


@pytest.mark.parametrize("a, b", [
    ("How can I sort a Python dict by its keys?", "What's the way to order a dictionary in Python by value?"),
    ("How do I enable dark mode in VS Code?", "Is there a way to disable dark mode in VS Code?"),
    ("How do you convert Celsius to Fahrenheit?", "What's the formula for turning Fahrenheit into Celsius?"),
    ("Convert a string to an integer in Java", "How would I turn an integer into a string with Java?"),  # the roles
    ("How do I convert a string to an integer in Java?", "How do I convert a string to an integer in JavaScript?"),
    ("What time zone is Chicago in?", "Which time zone does Denver use?"),
    ("How do I buy shares of Apple?", "What's the process for selling my Apple shares?"),
])
def test_the_strict_judge_sees_near_misses_worded_in_their_own_frame(a, b):
    """Issue 12: these hit under the `frame` rules (asked another way = a rephrasing); each swaps a word."""
    assert not judge("strict", a, b) and not judge("strict", b, a)


@pytest.mark.parametrize("a, b", [
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("What year did World War II end?", "When did the Second World War end?"),
    ("How do I get from Paris to Rome?", "What's the way to Rome from Paris?"),  # the same direction
    ("What is the population of Japan?", "What is Japan's population?"),
    ("Who invented the telephone?", "Who was the inventor of the telephone?"),
    ("What's the difference between a virus and bacteria?", "How do viruses differ from bacteria?"),
    ("How do I merge two dictionaries?", "How can I merge two dicts?"),
])
def test_the_strict_judge_keeps_rephrasings_that_swap_no_word(a, b):
    assert judge("strict", a, b) and judge("strict", b, a)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS + ["to", "from", "into", "javascript", "java"]), max_size=8).map(" ".join),
       st.lists(st.sampled_from(_WORDS + ["to", "from", "into", "javascript", "java"]), max_size=8).map(" ".join))
def test_the_strict_judgement_is_symmetric_and_reflexive(a, b):
    assert judge("strict", a, a)
    assert judge("strict", a, b) == judge("strict", b, a)


def test_two_long_prompts_are_judged_in_linear_work(monkeypatch):
    """Two 8,000-character prompts of distinct words: every word of one was compared with every word of the
    other (~10^6 prefix comparisons, seconds on the request path); now only words sharing four first letters."""
    from turnout.plugins import same_question as module
    calls = []
    original = module._forms_of_one_word
    monkeypatch.setattr(module, "_forms_of_one_word", lambda a, b: calls.append(1) or original(a, b))
    a = " ".join(f"w{i:04d}x" for i in range(1000))
    b = " ".join(f"v{i:04d}y" for i in range(1000))
    assert not judge("strict", a, b) and not judge("frame", a, b)
    assert len(calls) < 5_000


def _new_split(split: str) -> list[dict]:
    return [json.loads(line) for line in (NEW_PAIRS / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]


@pytest.mark.parametrize("split, least_hit_rate, least_precision", [
    ("tune", 0.24, 0.98),  # 0.247 / 1.000: looked at, and the judge and threshold chosen on it
    ("final", 0.29, 0.95),  # 0.299 / 0.958 (1 false hit), measured once when the method was final
])
def test_the_default_on_the_unbiased_pairs(split, least_hit_rate, least_precision):
    """Issue 12, on tests/data/cache_pairs (both classes vary their frame), through the plugin with its defaults.
    The issue's target (hit rate >= 80 % at precision >= 98 %) is NOT reached: these are the figures as measured
    (docs/plugins.md), pinned so that neither gets worse; the old default measured 50.6 % / 86.7 % on both."""
    rows = _new_split(split)
    hit_rate, precision = _rates(asyncio.run(_cache_hits(rows)), rows)
    assert precision >= least_precision and hit_rate >= least_hit_rate, (split, hit_rate, precision)


def test_long_prompts_cannot_fill_the_parse_cache():
    """Parsed prompts are cached (a cached prompt is parsed at every lookup that finds it); an 8,000-character
    prompt parses to ~80 KB, so 4,096 distinct ones held ~320 MB. Long prompts now share 64 places."""
    from turnout.plugins import same_question as module
    for i in range(200):
        module.Question.parse(" ".join(f"word{i}x{j}" for j in range(200)))
    assert module._parse_long.cache_info().currsize <= 64
    assert module._parse_short.cache_info().currsize < 4096


def test_words_sharing_four_letters_are_not_compared_pairwise(monkeypatch):
    """Two prompts of 1,000 distinct words that all start "abcd" were one group of the other side's leftovers,
    scanned for every word (~10^6 comparisons, 1.4 s on the request path); a large group is now looked up by the
    words' stems. The pairing is the scan's: a form of one word in a large group is still found."""
    from turnout.plugins import same_question as module
    calls = []
    original = module._forms_of_one_word
    monkeypatch.setattr(module, "_forms_of_one_word", lambda a, b: calls.append(1) or original(a, b))
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = ["abcd" + letters[i % 26] + letters[i // 26 % 26] + letters[i // 676 % 26] for i in range(2000)]
    a, b = " ".join(words[:1000]), " ".join(words[1000:])
    assert not judge("strict", a, b) and not judge("frame", a, b)
    assert len(calls) < 5_000
    # in a group of more than eight leftovers, "inventing" still pairs with "invented" (and not with "inventory")
    others = [f"invent{tail}" for tail in ("ory", "ive", "ors", "xa", "xb", "xc", "xd", "xe", "xf", "ed")]
    only_a, only_b = module._unshared(["inventing"], others)
    assert only_a == [] and "inventive" not in only_b and len(only_b) == len(others) - 1
