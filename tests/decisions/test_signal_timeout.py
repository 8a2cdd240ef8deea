"""A costly signal that outlives SIGNAL_TIMEOUT_S counts as not matched, with the timeout as its error, and the
other signals evaluated beside it keep their results (the pipeline's per-signal timeout scope)."""

from __future__ import annotations

import asyncio

from turnout import pipeline
from turnout.config import parse_config
from turnout.context import RoutingContext, SignalResult
from turnout.pipeline import Router
from turnout.signals.base import Signal, register


@register("test_stalled")
class StalledSignal(Signal):
    cost = 10

    async def evaluate(self, ctx):
        await asyncio.sleep(30)
        return SignalResult(True, 1.0)


@register("test_prompt")
class PromptSignal(Signal):
    cost = 10

    async def evaluate(self, ctx):
        await asyncio.sleep(0)
        return SignalResult(True, 1.0)


def test_a_stalled_costly_signal_times_out_and_the_others_still_count(monkeypatch):
    monkeypatch.setattr(pipeline, "SIGNAL_TIMEOUT_S", 0.05)
    cfg = parse_config({"models": {"m": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                        "signals": {"stall": {"kind": "test_stalled"}, "quick": {"kind": "test_prompt"}},
                        "decisions": [{"name": "stalled", "priority": 9, "when": {"signal": "stall"}, "models": ["m"]},
                                      {"name": "quick", "priority": 5, "when": {"signal": "quick"}, "models": ["m"]},
                                      {"name": "d", "models": ["m"]}]})
    router = Router.build(cfg)
    ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    route = asyncio.run(router.route(ctx))
    by_name = {s["name"]: s for s in route.signals}
    assert route.decision == "quick"
    assert by_name["stall"]["error"] == "timed out after 0.05s" and not by_name["stall"]["matched"]
    assert by_name["quick"]["matched"] and "error" not in by_name["quick"]
    asyncio.run(router.aclose())
