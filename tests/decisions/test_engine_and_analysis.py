"""The decision engine (priority, ties, failures) and the static analysis of rule sets."""

from __future__ import annotations

import asyncio

from turnout.config import parse_config
from turnout.context import RoutingContext, SignalResult
from turnout.decisions import DecisionEngine, evaluate
from turnout.decisions.analysis import analyse
from turnout.pipeline import Router
from turnout.signals import Signal, register


def config(decisions, signals=("a", "b", "c")):
    return parse_config({"models": {"m": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                         "signals": {s: {"kind": "keyword", "words": [s + "word"]} for s in signals},
                         "decisions": decisions})


def results(**matched):
    return {name: SignalResult(value, 1.0 if value else 0.0) for name, value in matched.items()}


def test_rule_tree_and_min_score():
    cfg = config([{"name": "x", "when": {"all": [{"signal": "a"}, {"not": {"any": [{"signal": "b"},
                                                                                    {"signal": "c", "min_score": 0.7}]}}]},
                   "models": ["m"]}, {"name": "d", "models": ["m"]}])
    rule = cfg.decisions[0].when
    assert evaluate(rule, results(a=True, b=False, c=False))
    assert not evaluate(rule, results(a=True, b=True, c=False))
    assert not evaluate(rule, {**results(a=True, b=False), "c": SignalResult(False, 0.8)})
    assert evaluate(rule, {**results(a=True, b=False), "c": SignalResult(True, 0.5)})
    assert not evaluate(rule, {"a": SignalResult(True, 1.0, error="boom"), **results(b=False, c=False)})


def test_priority_then_file_order():
    cfg = config([{"name": "low", "priority": 1, "when": {"signal": "a"}, "models": ["m"]},
                  {"name": "tie1", "priority": 5, "when": {"signal": "b"}, "models": ["m"]},
                  {"name": "tie2", "priority": 5, "when": {"signal": "a"}, "models": ["m"]},
                  {"name": "default", "models": ["m"]}])
    engine = DecisionEngine(cfg.decisions)
    assert engine.decide(results(a=True, b=True, c=False))[0].name == "tie1"
    assert engine.decide(results(a=True, b=False, c=False))[0].name == "tie2"
    winner, flags = engine.decide(results(a=False, b=False, c=False))
    assert winner.name == "default" and flags == [False, False, False, True]
    assert [(t.name, t.matched) for t in engine.trace(flags)][-1] == ("default", True)
    assert engine.referenced_signals == ["a", "b"]


def test_only_referenced_signals_run():
    cfg = config([{"name": "x", "when": {"signal": "a"}, "models": ["m"]}, {"name": "d", "models": ["m"]}])
    router = Router.build(cfg)
    ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "bword cword"}]})
    route = asyncio.run(router.route(ctx))
    assert [s["name"] for s in route.signals] == ["a"] and set(ctx.signals) == {"a"}
    asyncio.run(router.aclose())


@register("test_exploding")
class ExplodingSignal(Signal):
    async def evaluate(self, ctx):
        raise RuntimeError("model file corrupt")


def test_a_failing_signal_is_recorded_and_the_request_still_routes():
    cfg = parse_config({"models": {"m": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                        "signals": {"boom": {"kind": "test_exploding"}},
                        "decisions": [{"name": "x", "priority": 9, "when": {"signal": "boom"}, "models": ["m"]},
                                      {"name": "d", "models": ["m"]}]})
    router = Router.build(cfg)
    ctx = RoutingContext({"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    route = asyncio.run(router.route(ctx))
    assert route.decision == "d"
    assert route.signals[0]["error"] == "RuntimeError: model file corrupt" and not route.signals[0]["matched"]
    asyncio.run(router.aclose())


def messages_of(issues):
    return [str(i) for i in issues]


def test_analysis_finds_unreachable_unsatisfiable_duplicates_and_ties():
    found = messages_of(analyse(config([
        {"name": "ab", "priority": 10, "when": {"any": [{"signal": "a"}, {"signal": "b"}]}, "models": ["m"]},
        {"name": "a_only", "priority": 5, "when": {"signal": "a"}, "models": ["m"]},
        {"name": "never", "priority": 3, "when": {"all": [{"signal": "c"}, {"not": {"signal": "c"}}]}, "models": ["m"]},
        {"name": "same", "priority": 2, "when": {"any": [{"signal": "b"}, {"signal": "a"}]}, "models": ["m"]},
        {"name": "c_hi", "priority": 4, "when": {"signal": "c", "min_score": 0.9}, "models": ["m"]},
        {"name": "c_lo", "priority": 4, "when": {"signal": "c", "min_score": 0.5}, "models": ["m"]},
        {"name": "default", "models": ["m"]},
    ]).decisions))
    assert any(f.startswith("decisions[1]: 'a_only' is unreachable") for f in found)
    assert "decisions[2]: 'never' can never match: its condition is unsatisfiable" in found
    assert any(f.startswith("decisions[3]: 'same' is unreachable") for f in found)
    assert "decisions[3].when: 'same' has the same condition as 'ab' (decisions[0])" in found
    assert any(f.startswith("decisions[5].priority: 'c_lo' and 'c_hi' (decisions[4]) have equal priority 4") for f in found)
    assert not any("'c_lo' is unreachable" in f for f in found)  # scores between 0.5 and 0.9 reach it


def test_a_higher_priority_default_shadows_everything_below():
    found = messages_of(analyse(config([{"name": "catch_all", "priority": 9, "models": ["m"]},
                                        {"name": "a", "priority": 1, "when": {"signal": "a"}, "models": ["m"]}]).decisions))
    assert any(f.startswith("decisions[1]: 'a' is unreachable") for f in found)


def test_clean_config_has_no_warnings():
    assert analyse(config([{"name": "a", "priority": 2, "when": {"signal": "a"}, "models": ["m"]},
                           {"name": "b", "priority": 1, "when": {"signal": "b"}, "models": ["m"]},
                           {"name": "default", "models": ["m"]}]).decisions) == []


def test_compiled_rules_agree_with_the_reference_interpreter():
    import random

    rng = random.Random(7)
    names = ["a", "b", "c"]

    def random_rule(depth=0):
        kind = rng.choice(["leaf", "leaf", "all", "any", "not"] if depth < 3 else ["leaf"])
        if kind == "leaf":
            leaf = {"signal": rng.choice(names)}
            if rng.random() < 0.4:
                leaf["min_score"] = rng.choice([0.2, 0.5, 0.8])
            return leaf
        if kind == "not":
            return {"not": random_rule(depth + 1)}
        return {kind: [random_rule(depth + 1) for _ in range(rng.randint(1, 3))]}

    decisions = [{"name": f"d{i}", "priority": rng.randint(0, 3), "when": random_rule(), "models": ["m"]}
                 for i in range(30)] + [{"name": "default", "models": ["m"]}]
    engine = DecisionEngine(config(decisions).decisions)
    for _ in range(300):
        world = {n: SignalResult(rng.random() < 0.5, rng.random(), error="x" if rng.random() < 0.1 else None)
                 for n in names}
        _, flags = engine.decide(world)
        assert flags == [evaluate(d.when, world) for d in engine.decisions]
