"""Model and decision names are sent in response headers: a name that could break or forge a header is a config
error that `turnout validate` names, never a 500 on every request."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml


@pytest.mark.parametrize("models, decision, where", [
    ({"modèle": {}}, None, "models.modèle"),
    ({"a\r\nx-forged: 1": {}}, None, "models."),
    ({"small": {}}, "routé", "decisions[0].name"),
    ({"small": {}}, " padded", "decisions[0].name"),
])
def test_names_that_cannot_be_headers_are_config_errors(tmp_path, models, decision, where):
    config = {"models": {name: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"} for name in models}}
    if decision is not None:
        config["decisions"] = [{"name": decision, "models": list(models)}]
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "turnout.cli", "validate", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert where in run.stderr and "printable ASCII" in run.stderr, run.stderr


def test_names_with_inner_spaces_and_punctuation_are_fine(tmp_path):
    config = {"models": {"gpt-4o mini/2024:v1": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
              "decisions": [{"name": "default route", "models": ["gpt-4o mini/2024:v1"]}]}
    path = tmp_path / "turnout.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "turnout.cli", "validate", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
