"""The contract every registered judge keeps: built from its params, it scores any answer in [0, 1], its verdict
agrees with its threshold, and it never raises on odd answers (no choices, no content, content parts)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from turnout.judges import Verdict, build_judge, judges

# the params a judge needs to be built at all (the rest have defaults)
REQUIRED = {"verifier": {"model": "judge"}}
ANSWERS = [
    {"choices": [{"message": {"role": "assistant", "content": "The answer is 4."}, "finish_reason": "stop"}]},
    {"choices": [{"message": {"role": "assistant", "content": None}, "finish_reason": "stop"}]},
    {"choices": []},
    {},
    {"choices": [{"message": {"role": "assistant", "content": [{"type": "text", "text": "4"}]}}]},
]
REQUEST = {"messages": [{"role": "system", "content": "Context: 2+2 is 4."}, {"role": "user", "content": "2+2?"}]}


class Env:
    async def ask(self, model: str, body: dict[str, Any]) -> dict[str, Any]:
        return ANSWERS[0] | {"choices": [{"message": {"role": "assistant", "content": "yes"}}]}

    async def samples(self, k: int) -> list[dict[str, Any]]:
        return [ANSWERS[0]] * k


def buildable() -> list[str]:
    names = []
    for name in judges.names():
        try:
            build_judge({"name": name, "params": REQUIRED.get(name, {})}, "judge")
        except Exception:  # noqa: BLE001, S112 - a judge that needs an artifact is tested in its own file
            continue
        names.append(name)
    return names


def test_the_judges_of_this_brief_build_with_their_defaults():
    assert {"format", "logprob", "verifier", "consistency"} <= set(buildable())


@pytest.mark.parametrize("name", buildable())
@pytest.mark.parametrize("answer", ANSWERS)
def test_every_judge_keeps_the_contract(name, answer):
    judge = build_judge({"name": name, "params": REQUIRED.get(name, {})}, "judge")
    verdict = asyncio.run(judge.judge(REQUEST, answer, Env()))
    assert isinstance(verdict, Verdict)
    assert 0.0 <= verdict.score <= 1.0
    # (free-text consistency passes on its own similarity mark)
    assert verdict.passed == (verdict.score >= judge.threshold) or "similarity" in verdict.detail
    assert isinstance(verdict.to_dict(), dict)
