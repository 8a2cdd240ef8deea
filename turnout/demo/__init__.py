"""The embedded default: a demo router over recorded answers of real models (see default.yaml)."""

from __future__ import annotations

from importlib import resources

from turnout.config import Config, parse_config, parse_yaml


def demo_config_text() -> str:
    return resources.files("turnout.demo").joinpath("default.yaml").read_text(encoding="utf-8")


def demo_config() -> Config:
    return parse_config(parse_yaml(demo_config_text(), source="embedded demo"), source="embedded demo")
