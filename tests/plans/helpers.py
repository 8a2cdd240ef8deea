"""Configs for plan tests: three scripted models on the mock upstream (mock_scripted.py), priced apart."""

from __future__ import annotations

from typing import Any

from tests.conftest import TEST_KEY

SCHEMA = {"type": "json_schema", "json_schema": {"name": "answer", "schema": {
    "type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
    "additionalProperties": False}}}
PRICES = {"cheap": (0.1, 0.2), "mid": (1.0, 2.0), "strong": (5.0, 15.0), "judge": (0.5, 1.0)}


def plan_config(upstream_url: str, plan: dict[str, Any], models: list[str] | None = None,
                **server: Any) -> dict[str, Any]:
    return {
        "server": {"retry": {"attempts": 0}, **server},
        "models": {name: {"provider": "openai", "base_url": f"{upstream_url}/scripted/v1", "model": f"mock-{name}",
                          "api_key": TEST_KEY, "cost": {"input": i, "output": o}}
                   for name, (i, o) in PRICES.items()},
        "decisions": [{"name": "planned", "models": models or ["strong", "mid", "cheap"], "plan": plan}],
    }


def cost_of(name: str, usage: dict[str, Any]) -> float:
    i, o = PRICES[name]
    return (usage["prompt_tokens"] * i + usage["completion_tokens"] * o) / 1e6


def chat_requests(log: list[dict[str, Any]]) -> list[str]:
    """The upstream models asked, in order."""
    return [r["body"]["model"] for r in log if r["path"].endswith("/chat/completions")]
