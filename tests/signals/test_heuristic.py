"""Heuristic signals on real prompts, including bad input: they answer or record an error, never crash."""

from __future__ import annotations

import asyncio

import pytest

from turnout.context import Caller, RoutingContext
from turnout.signals import signals


def make(kind: str, **params):
    return signals.get(kind).from_config("s", params, "signals.s")


def run(signal, content="", messages=None, **body):
    ctx = RoutingContext({"messages": messages or [{"role": "user", "content": content}], **body},
                         headers=body.pop("headers", {}) if "headers" in body else {})
    return asyncio.run(signal.evaluate(ctx))


def test_keyword_weights_boundaries_and_scope():
    signal = make("keyword", words={"stack trace": 2, "segfault": 1, "def ": 1})
    result = run(signal, "I got a Stack Trace and a segfault")
    assert result.matched and result.score == pytest.approx(0.75) and result.detail["words"] == ["segfault", "stack trace"]
    assert not run(make("keyword", words=["cat"]), "concatenate these").matched  # word boundary
    assert run(make("keyword", words=["cat"], word_boundary=False), "concatenate").matched
    system_only = make("keyword", words=["pirate"], scope="system")
    assert run(system_only, messages=[{"role": "system", "content": "talk like a pirate"},
                                      {"role": "user", "content": "hi"}]).matched
    assert not run(make("keyword", words=["pirate"]), messages=[{"role": "system", "content": "pirate"},
                                                                 {"role": "user", "content": "hi"}]).matched


def test_regex():
    signal = make("regex", patterns={"ticket": r"\bJIRA-\d+\b", "sql": r"select .* from"})
    result = run(signal, "see JIRA-1234")
    assert result.matched and result.score == 0.5 and result.detail == {"matched": ["ticket"]}
    assert run(make("regex", patterns=["ÉTÉ"], ignore_case=True), "en été").matched  # UTF-8, case folded


def test_a_pattern_re2_cannot_take_is_a_config_error_at_its_path():
    from turnout.config import ConfigError, parse_config
    from turnout.pipeline import Router

    with pytest.raises(ConfigError) as info:
        make("regex", patterns=["fine", r"(?<!x)y", r"(a)\1"])
    issues = {issue.path: issue.message for issue in info.value.issues}
    assert set(issues) == {"signals.s.patterns[1]", "signals.s.patterns[2]"}
    assert "(?<!x)y" in issues["signals.s.patterns[1]"] and "lookaround" in issues["signals.s.patterns[1]"]
    with pytest.raises(ConfigError) as info:
        make("regex", patterns={"ahead": r"a(?=b)"})
    assert [issue.path for issue in info.value.issues] == ["signals.s.patterns.ahead"]
    config = {"models": {"m": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
              "signals": {"rx": {"kind": "regex", "patterns": [r"(?=x)"]}},
              "decisions": [{"name": "d", "when": {"signal": "rx"}, "models": ["m"]}, {"name": "default", "models": ["m"]}]}
    with pytest.raises(ConfigError) as info:
        Router.build(parse_config(config))
    assert "signals.rx.patterns[0]: RE2 cannot compile" in str(info.value)


@pytest.mark.parametrize("text, language", [
    ("Bonjour, pouvez-vous m'aider à écrire une lettre de motivation ?", "fr"),
    ("Wie funktioniert die Photosynthese in Pflanzen?", "de"),
    ("¿Cuál es la capital de Australia y por qué no es Sídney?", "es"),
    ("日本の首都はどこですか？", "ja"),
    ("Explain the difference between TCP and UDP.", "en"),
])
def test_language_detects_real_prompts(text, language):
    result = run(make("language", languages=[language]), text)
    assert result.matched and result.detail["language"] == language


def test_language_on_nothing_to_detect():
    result = run(make("language", languages=["en"]), "12345 !!! ???")
    assert not result.matched and result.detail["language"] == "und"


def test_context_length_counts_cjk_heavier():
    signal = make("context_length", min_tokens=100)
    assert not run(signal, "word " * 60).matched
    assert run(signal, "漢字" * 80).matched


def test_context_length_exact_wordpiece_count():
    signal = make("context_length", min_tokens=10, counter="wordpiece")
    result = run(signal, "The quick brown fox jumps over the lazy dog again.")
    assert result.detail["tokens"] == 11 and result.matched


def test_conversation_shape():
    messages = [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                             {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                                        "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "1", "content": "42"},
                {"role": "user", "content": "and now?"}]
    result = run(make("conversation", has_images=True, min_turns=2), messages=messages, tools=[{"type": "function"}])
    assert result.matched and result.detail["turns"] == 2 and result.detail["has_tool_results"]
    assert not run(make("conversation", has_audio=True), messages=messages).matched


@pytest.mark.parametrize("text, kind", [
    ("```python\nprint('x')\n```", "code"),
    ("why does this fail?\ndef f(x):\n    return x +", "code"),
    ('parse this: {"name": "x", "age": 3}', "json"),
    (r"compute \int_0^1 x^2 dx", "math"),
    ("| a | b |\n|---|---|\n| 1 | 2 |", "table"),
])
def test_structure_finds_each_kind(text, kind):
    result = run(make("structure", kinds=[kind]), text)
    assert result.matched, text


def test_structure_ignores_plain_prose():
    assert not run(make("structure", kinds=["code", "json", "math", "table"]),
                   "Tell me a story about a dragon who learns to bake bread.").matched


def test_role_header_metadata_user_flags():
    ctx = RoutingContext({"messages": [{"role": "user", "content": "x"}], "metadata": {"tier": "Gold"}, "user": "u7"},
                         headers={"x-tenant": "acme", "x-turnout-objective": "cost"},
                         caller=Caller("key1", ("admin",)))
    ev = lambda kind, **p: asyncio.run(make(kind, **p).evaluate(ctx))  # noqa: E731
    assert ev("role", roles=["admin", "ops"]).detail == {"roles": ["admin"]}
    assert not ev("role", roles=["ops"]).matched
    assert ev("header", name="X-Tenant", values=["acme"]).matched
    assert not ev("header", name="x-tenant", pattern="^globex$").matched
    assert ev("metadata", key="tier", values=["gold"]).matched
    assert ev("metadata", key="user", pattern=r"^u\d+$").matched
    assert ev("user_flags", objectives=["cost"]).detail == {"objective": "cost"}
    assert not ev("user_flags", objectives=["quality"]).matched


def test_pii_types_and_counts():
    text = "Mail john@example.com, card 4111 1111 1111 1111, call +1 415-555-0132, key sk-proj-abcdefghij0123456789"
    result = run(make("pii"), text)
    assert result.matched and result.detail["types"] == {"email": 1, "credit_card": 1, "phone": 1, "secret": 1}
    assert not run(make("pii", types=["iban"]), text).matched
    assert not run(make("pii"), "Order 4111 1111 1111 1112 (not a valid card) ships 2024-03-15.").matched


@pytest.mark.parametrize("text, kind, value", [
    ("mail ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ today", "email", "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ"),  # full-width
    ("mail jo\u200bhn@exa\u00admple.com today", "email", "jo\u200bhn@exa\u00admple.com"),  # zero-width, soft hyphen
    ("ring 0044 20 7946 0958 now", "phone", "0044 20 7946 0958"),  # the international prefix as 00
    ("ring +44 20 7946 0958 now", "phone", "+44 20 7946 0958"),
    ("card ４１１１ １１１１ １１１１ １１１１ ok", "credit_card", "４１１１ １１１１ １１１１ １１１１"),
    ("ﬁle x@y.io", "email", "x@y.io"),  # a ligature before it shifts the offsets
])
def test_pii_seen_through_unicode_disguises(text, kind, value):
    from turnout.signals.pii import find_pii

    spans = find_pii(text)
    assert [(s.type, text[s.start:s.end]) for s in spans] == [(kind, value)]


@pytest.mark.parametrize("text", ["call 0012 3456", "order 00123456789", "x+1 415", "QQ 12 34 56 A is no NINO"])
def test_pii_lookalikes_stay_unflagged(text):
    from turnout.signals.pii import find_pii

    assert find_pii(text) == []


BAD_INPUTS = [
    {"messages": [{"role": "user", "content": ""}]},
    {"messages": [{"role": "user", "content": None}]},
    {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAAA"}}]}]},
    {"messages": [{"role": "user", "content": "x" * 1_000_000}]},
    {"messages": [{"role": "user", "content": "\ud800 broken surrogate \udfff"}]},
    {"messages": [{"role": "user", "content": "ꙮꙮꙮ ᚠᚢᚦᚨᚱᚲ 𓀀𓀁"}]},
    {"messages": []},
]
ALL_PARAMS = {
    "keyword": {"words": ["x"]}, "regex": {"patterns": ["x+"]}, "language": {"languages": ["en"]},
    "context_length": {"min_tokens": 10}, "conversation": {"min_turns": 1}, "structure": {"kinds": ["code", "math"]},
    "role": {"roles": ["a"]}, "header": {"name": "x-a"}, "metadata": {"key": "k"}, "user_flags": {"objectives": ["cost"]},
    "pii": {}, "reask": {"min_chars": 0}, "feedback": {}, "fact_check": {},
    "modality": {"outputs": ["image", "audio", "video"], "inputs": ["image", "audio", "file"]},
}
NEURAL_PARAMS = {"embedding": {"examples": ["solve for x"]}, "domain": {"domains": ["math"]}, "complexity": {},
                 "jailbreak": {}}


@pytest.mark.parametrize("body", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
@pytest.mark.parametrize("kind", sorted(ALL_PARAMS) + sorted(NEURAL_PARAMS))
def test_every_signal_survives_bad_input(kind, body):
    result = asyncio.run(make(kind, **{**ALL_PARAMS, **NEURAL_PARAMS}[kind]).evaluate(RoutingContext(body)))
    assert isinstance(result.matched, bool) and 0.0 <= result.score <= 1.0


def test_every_registered_signal_has_a_contract_case():
    assert {n for n in signals.names() if not n.startswith("test_")} == set(ALL_PARAMS) | set(NEURAL_PARAMS)
