"""Every config problem is reported with its YAML path, all at once."""

from __future__ import annotations

import pytest

from turnout.config import ConfigError, parse_config, parse_yaml
from turnout.pipeline import Router


def problems(text: str, build: bool = False) -> list[str]:
    try:
        config = parse_config(parse_yaml(text))
        if build:
            Router.build(config)
    except ConfigError as exc:
        return [str(i) for i in exc.issues]
    return []


GOOD = """
models:
  small: {provider: openai, base_url: "http://127.0.0.1:1/v1"}
"""


def test_minimal_config_is_valid_and_gets_a_default_decision():
    config = parse_config(parse_yaml(GOOD))
    assert [d.name for d in config.effective_decisions()] == ["default"]
    assert config.server.port == 8080 and config.routing.aliases == ["auto"]


def test_reference_errors_name_paths():
    found = problems("""
models:
  small: {provider: openai, base_url: "http://x/v1"}
signals:
  code: {kind: keyword, words: [def]}
decisions:
  - {name: a, priority: 5, when: {all: [{signal: code}, {any: [{signal: cod}]}]}, models: [small]}
  - {name: a, when: {not: {signal: nope}}, models: [gpt5]}
""")
    assert found == [
        "decisions[0].when.all[1].any[0].signal: unknown signal 'cod'; did you mean 'code'? (valid: code)",
        "decisions[1].name: duplicate decision name 'a' (also decisions[0])",
        "decisions[1].models[0]: unknown model 'gpt5' (valid: small)",
        "decisions[1].when.not.signal: unknown signal 'nope' (valid: code)",
        "decisions: no default decision: give one decision no `when` so every request has a route",
    ]


def test_schema_errors_name_paths_and_suggest_keys():
    found = problems("""
models:
  small: {provider: openai, base_url: "http://x/v1", modle: q, cost: {input: -1}}
  az: {provider: azure, base_url: "http://x"}
decisions:
  - {name: d, models: [small], algorithm: {nam: x}, plugins: [{a: 1, b: 2}]}
  - {name: e, when: {sigal: x}, models: [small]}
servr: {}
""")
    assert "models.small: unknown key 'modle'; did you mean 'model'?" in found
    assert "models.small.cost.input: Input should be greater than or equal to 0" in found
    assert "decisions[0].algorithm: unknown key 'nam'; did you mean 'name'?" in found
    assert any(f.startswith("decisions[0].plugins[0]: ") and "exactly one key" in f for f in found)
    assert any(f.startswith("decisions[1].when: ") and "a rule is exactly one of" in f for f in found)
    assert "unknown key 'servr'; did you mean 'server'?" in found


def test_registry_errors_name_paths():
    found = problems("""
models:
  small: {provider: opnai, base_url: "http://x/v1"}
  big: {provider: anthropic, options: {default_max_token: 5}}
signals:
  code: {kind: keywords, words: [def]}
  long: {kind: context_length, min_tokens: -4}
  kw: {kind: keyword}
decisions:
  - {name: d, models: [big], algorithm: {name: knnn}, plugins: [{system_prompt: {txt: hi}}, {nope: {}}]}
""", build=True)
    assert any(f.startswith("signals.code.kind: unknown signal kind 'keywords'; did you mean 'keyword'? (valid: ")
               for f in found)
    assert "signals.long.min_tokens: Input should be greater than or equal to 0" in found
    assert "signals.kw.words: required but missing" in found
    assert any(f.startswith("decisions[0].algorithm.name: unknown selection algorithm 'knnn'") for f in found)
    assert any(f.startswith("decisions[0].plugins[0].system_prompt: unknown key 'txt'; did you mean 'text'?")
               for f in found)
    assert any(f.startswith("decisions[0].plugins[1]: unknown plugin 'nope'") for f in found)
    assert any(f.startswith("models.small.provider: unknown provider 'opnai'; did you mean 'openai'?") for f in found)
    assert any(f.startswith("models.big.options: unknown key 'default_max_token'; did you mean 'default_max_tokens'?")
               for f in found)


def test_env_secrets(monkeypatch):
    monkeypatch.setenv("SMALL_KEY", "sk-from-env-123")
    config = parse_config(parse_yaml(GOOD.replace("}", ", api_key: env:SMALL_KEY}")))
    assert config.models["small"].api_key.get_secret_value() == "sk-from-env-123"
    assert "sk-from-env" not in repr(config)
    monkeypatch.delenv("SMALL_KEY")
    assert problems(GOOD.replace("}", ", api_key: env:SMALL_KEY}")) == [
        "models.small.api_key: environment variable SMALL_KEY is not set"]


@pytest.mark.parametrize("text, expected", [
    ("models: [unclosed", "invalid YAML at line 1"),
    ("- just\n- a list", "the top level must be a mapping"),
    ("", "models: required but missing"),
])
def test_unreadable_documents(text, expected):
    assert any(expected in p for p in problems(text))
