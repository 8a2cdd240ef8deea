"""The CLI, run as a user runs it: a real `turnout` process."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml

from tests.conftest import base_config


def turnout(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "turnout.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})


def test_validate_good_and_bad(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9")))
    result = turnout("validate", str(good))
    assert result.returncode == 0 and "ok" in result.stdout and "4 models" in result.stdout

    config = base_config("http://127.0.0.1:9")
    config["decisions"][0]["models"] = ["gpt5"]
    config["signals"]["code"]["kind"] = "keywrd"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = turnout("validate", str(bad))
    assert result.returncode == 1
    assert "decisions[0].models[0]: unknown model 'gpt5'" in result.stderr
    result = turnout("validate", str(tmp_path / "missing.yaml"))
    assert result.returncode == 1 and "cannot read" in result.stderr


def test_validate_reports_every_registry_problem(tmp_path):
    config = base_config("http://127.0.0.1:9")
    config["signals"]["code"]["kind"] = "keywrd"
    config["decisions"][1]["algorithm"] = {"name": "magic"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    result = turnout("validate", str(bad))
    assert result.returncode == 1
    assert "signals.code.kind: unknown signal kind 'keywrd'; did you mean 'keyword'?" in result.stderr
    assert "decisions[1].algorithm.name: unknown selection algorithm 'magic'" in result.stderr


def test_route_prints_the_explanation_table():
    result = turnout("route", "What is 15 percent of 80?")
    assert result.returncode == 0, result.stderr
    for expected in ("signals", "hard_math", "percent", "decisions", "hard", "yes ← wins", "gpt-4-1106-preview"):
        assert expected in result.stdout


def test_route_json_and_direct_model(tmp_path):
    result = turnout("route", "hello", "--json")
    explanation = json.loads(result.stdout)
    assert explanation["decision"] == "default" and explanation["model"] == "mixtral-8x7b-instruct-v0.1"
    assert [s["name"] for s in explanation["signals"]] == ["hard_math", "long_prompt"]
    result = turnout("route", "hello", "--json", "--model", "gpt-4-1106-preview")
    assert json.loads(result.stdout)["mode"] == "direct"
    result = turnout("route", "hello", "--model", "gpt-9")
    assert result.returncode == 1 and "does not exist" in result.stderr


def test_models_lists_prices(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base_config("http://127.0.0.1:9")))
    result = turnout("models", "--config", str(path))
    assert result.returncode == 0
    assert "claude-mock" in result.stdout and "anthropic" in result.stdout and "2.5" in result.stdout
    assert "routing aliases: auto" in result.stdout
