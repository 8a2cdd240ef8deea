"""Every config problem is reported with its YAML path, all at once."""

from __future__ import annotations

import os
import subprocess
import sys

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


SEVEN_PROBLEMS = """
models:
  small: {provider: openai, base_url: "http://127.0.0.1:1/v1", modle: q}
  strong: {provider: openai, base_url: "http://127.0.0.1:1/v1", cost: {input: -1}}
signals:
  code: {kind: keyword, words: [def]}
  long: {kind: context_length, min_tokens: -4}
decisions:
  - {name: coding, priorty: 3, when: {signal: code}, models: [strong, gpt5], algorithm: {name: knnn}}
  - {name: chat, when: {signal: chatty}, models: [small]}
  - {name: default, models: [small]}
"""


def test_validate_lists_schema_reference_and_parameter_problems_in_one_run(tmp_path):
    """Issue 12: a file with 7 problems took 3 runs (schema, then names, then component parameters)."""
    path = tmp_path / "seven.yaml"
    path.write_text(SEVEN_PROBLEMS)
    result = subprocess.run([sys.executable, "-m", "turnout.cli", "validate", str(path)], capture_output=True,
                            check=False, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert result.returncode == 1
    errors = [line.removeprefix("error ") for line in result.stderr.splitlines() if line.startswith("error ")]
    assert sorted(e.split(": ")[0] for e in errors) == sorted([
        "models.small", "models.strong.cost.input", "decisions[0]",  # schema
        "decisions[0].models[1]", "decisions[1].when.signal",  # references
        "signals.long.min_tokens", "decisions[0].algorithm.name",  # component parameters
    ]), result.stderr
    assert "models.small: unknown key 'modle'; did you mean 'model'?" in errors
    assert "decisions[0]: unknown key 'priorty'; did you mean 'priority'?" in errors
    assert "decisions[1].when.signal: unknown signal 'chatty' (valid: code, long)" in errors
    assert f"{path}: 7 error(s)" in result.stderr


def test_an_entry_the_schema_rejects_is_not_also_an_unknown_name():
    found = problems("""
models:
  small: {provider: openai, base_url: "http://x/v1"}
  broken: {base_url: "http://x/v1"}
signals:
  odd: {words: [x]}
decisions:
  - {name: a, when: {signal: odd}, models: [broken, small, nope]}
  - {name: b, models: []}
  - {name: c, models: [small]}
auth:
  keys: [{name: k, key: sk-123456, decisions: [b, zz]}]
""")
    assert "models.broken.provider: required but missing" in found
    assert "signals.odd.kind: required but missing" in found
    assert "decisions[1].models: List should have at least 1 item after validation, not 0" in found
    assert "decisions[0].models[2]: unknown model 'nope' (valid: small)" in found
    assert "auth.keys[0].decisions[1]: unknown decision 'zz' (valid: a, c)" in found
    assert not [f for f in found if "'broken'" in f or "'odd'" in f or "decision 'b'" in f], found
    assert len(found) == 5, found


def test_paths_after_a_rejected_list_item_keep_the_file_s_indices():
    found = problems_of_file("""
models:
  small: {provider: openai, base_url: "http://x/v1"}
decisions:
  - {name: nomodels}
  - {name: x, when: {any: [{sigal: a}, {signal: nope}]}, models: [small],
     plugins: [{a: 1, b: 2}, {system_prompt: {txt: 1}}]}
  - {name: default, models: [small], fallbacks: [gone]}
""")
    assert "decisions[1].when.any[1].signal: unknown signal 'nope' (valid: none)" in found
    assert "decisions[1].plugins[1].system_prompt: unknown key 'txt'; did you mean 'text'? (valid: text, mode)" \
        in found
    assert "decisions[2].fallbacks[0]: unknown model 'gone' (valid: small)" in found


def problems_of_file(text: str) -> list[str]:
    """Load and compile as `turnout validate` and a reload do: every stage in one run."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "config.yaml")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        try:
            Router.load(path)
        except ConfigError as exc:
            return [str(i) for i in exc.issues]
    return []


def test_an_unknown_log_level_is_a_config_error_not_a_crash_at_start():
    assert problems(GOOD + "server: {log_level: verbose}\n") == [
        "server.log_level: Input should be 'debug', 'info', 'warning', 'error' or 'critical'"]
