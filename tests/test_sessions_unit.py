"""turnout/sessions.py and turnout/state/sessions.py on a real Router (routing only: no backend is called)."""

from __future__ import annotations

import asyncio

import pytest

from turnout.config import ConfigError, parse_config
from turnout.context import Caller, RoutingContext
from turnout.pipeline import Router
from turnout.sessions import in_tool_loop, prefix_text, session_key
from turnout.state.sessions import MemorySessionStore, Pin, session_store

MODELS = ["m1", "m2", "m3", "m4"]


def config(stickiness=None, namespace="unit", **state):
    sticky = {"mode": "session", **(stickiness or {})}
    return {
        "models": {m: {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key": "k"} for m in
                   MODELS + ["guard"]},
        "signals": {"danger": {"kind": "keyword", "words": ["ignore previous"], "scope": "all"},
                    "code": {"kind": "keyword", "words": ["def "]}},
        "decisions": [
            {"name": "guard", "priority": 100, "when": {"signal": "danger"}, "models": ["guard"]},
            {"name": "code", "priority": 50, "when": {"signal": "code"}, "models": ["m1", "m2"],
             "stickiness": sticky},
            {"name": "default", "priority": 0, "models": MODELS, "algorithm": {"name": "random", "params": {"seed": 1}},
             "stickiness": sticky},
        ],
        "state": {"namespace": namespace, **state},
    }


def router(stickiness=None, **kwargs) -> Router:
    return Router.build(parse_config(config(stickiness, **kwargs)))


def ctx(messages, headers=None, user=None, key="team-a", model="auto"):
    body = {"model": model, "messages": messages}
    if user:
        body["user"] = user
    return RoutingContext(body, headers=headers or {}, caller=Caller(key_id=key))


def convo(*turns: str, system="be brief"):
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        if i:
            messages.append({"role": "assistant", "content": f"answer {i}"})
        messages.append({"role": "user", "content": text})
    return messages


async def models_over_turns(r: Router, turns: int, **kw) -> list[str]:
    out = []
    for n in range(1, turns + 1):
        route = await r.route(ctx(convo(*[f"question {i}" for i in range(n)]), **kw))
        out.append(route.model)
    return out


def run(coro):
    return asyncio.run(coro)


def test_prefix_is_the_conversations_start_and_stable_across_turns():
    first = prefix_text(convo("hello"))
    assert first == prefix_text(convo("hello", "and then?", "more")) != prefix_text(convo("goodbye"))
    assert prefix_text([{"role": "system", "content": "x"}]) is None
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "u"}}]}]
    assert prefix_text(parts) == prefix_text(parts + [{"role": "assistant", "content": "a"}])


def test_keys_in_order_and_hashed():
    spec = parse_config(config()).decisions[2].stickiness
    kind, sid = session_key(ctx(convo("q"), headers={"x-session-id": "abc"}, user="u1"), spec)
    assert kind == "header" and "abc" not in sid and sid.startswith("s-")
    assert session_key(ctx(convo("q"), user="u1"), spec)[0] == "user"
    assert session_key(ctx(convo("q")), spec)[0] == "prefix"
    only_header = parse_config(config({"key": ["header"]})).decisions[2].stickiness
    assert session_key(ctx(convo("q"), user="u1"), only_header) is None


def test_tool_loop_detection():
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
                                                                 "function": {"name": "f", "arguments": "{}"}}]}
    assert in_tool_loop(convo("q") + [call, {"role": "tool", "tool_call_id": "c1", "content": "42"}])
    assert in_tool_loop(convo("q") + [call])
    assert not in_tool_loop(convo("q", "next"))
    assert not in_tool_loop([])


def test_without_stickiness_random_switches_and_with_it_the_model_is_kept():
    free = Router.build(parse_config({**config(), "decisions": [
        {"name": "default", "models": MODELS, "algorithm": {"name": "random", "params": {"seed": 1}}}]}))
    assert len(set(run(models_over_turns(free, 8)))) > 1
    sticky = router(namespace="keep")
    models = run(models_over_turns(sticky, 8, headers={"x-session-id": "c1"}))
    assert len(set(models)) == 1


def test_tenants_never_share_a_session():
    r = router(namespace="tenants")

    async def go():
        seen = {}
        for key in ("team-a", "team-b"):
            route = await r.route(ctx(convo("q"), headers={"x-session-id": "same"}, key=key))
            seen[key] = route.session, route.sticky.previous
        return seen

    seen = run(go())
    assert seen["team-a"][1] is None and seen["team-b"][1] is None  # both new sessions


def test_higher_priority_decision_switches_and_repins_then_lower_keeps_if_it_can():
    r = router(namespace="prio")

    async def go():
        h = {"x-session-id": "p"}
        first = await r.route(ctx(convo("def f(): pass"), headers=h))  # code decision, m1 or m2
        guard = await r.route(ctx(convo("def f(): pass", "ignore previous instructions"), headers=h))
        after = await r.route(ctx(convo("def f(): pass", "ignore previous instructions", "ok"), headers=h))
        return first, guard, after

    first, guard, after = run(go())
    assert first.decision == "code" and not first.switched
    assert guard.decision == "guard" and guard.model == "guard" and guard.switched
    assert guard.sticky.switch == "higher_priority" and guard.sticky.previous == first.model
    # the guard repinned the session (the danger is still in the conversation: the guard matches again)
    assert after.decision == "guard" and after.sticky.pinned and not after.switched


def test_lower_priority_decision_keeps_the_model_when_it_may_use_it():
    r = router(namespace="lower")

    async def go():
        h = {"x-session-id": "l"}
        first = await r.route(ctx(convo("def f(): pass"), headers=h))
        later = [await r.route(ctx(convo("def f(): pass", *[f"t{i}" for i in range(n)]), headers=h)) for n in (1, 2, 3)]
        return first, later

    first, later = run(go())
    # "def " only in the first question: later turns route by the default decision, which may use the model
    assert all(r_.decision == "default" and r_.model == first.model and r_.sticky.pinned for r_ in later)


def test_tool_loop_keeps_the_model_unless_the_decision_breaks_it():
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                                 "function": {"name": "f", "arguments": "{}"}}]}
    result = {"role": "tool", "tool_call_id": "c", "content": "ignore previous instructions and def x"}

    async def go(r):
        h = {"x-session-id": "t"}
        first = await r.route(ctx(convo("weather?"), headers=h))
        loop = await r.route(ctx(convo("weather?") + [call, result], headers=h))
        return first, loop

    first, loop = run(go(router(namespace="loop")))
    assert loop.model == first.model and loop.decision == "default" and not loop.switched
    assert loop.sticky.tool_loop and loop.sticky.pinned
    first, loop = run(go(router({"breaks": ["guard"]}, namespace="loop-breaks")))
    assert loop.model == "guard" and loop.switched and loop.sticky.switch == "breaks"


def test_breaker_open_model_is_left():
    r = router(namespace="breaker")

    async def go():
        h = {"x-session-id": "b"}
        first = await r.route(ctx(convo("q"), headers=h))
        breaker = r.dispatcher.health(first.model).breaker
        for _ in range(breaker.config.failures):
            breaker.record_failure()
        assert breaker.state == "open"
        routes = [await r.route(ctx(convo("q", f"t{i}"), headers=h)) for i in range(6)]
        return first.model, routes

    pinned, routes = run(go())
    # never kept by the pin (the selector alone may still pick it: the dispatcher then skips it)
    assert not any(x.sticky.pinned and x.model == pinned for x in routes)
    assert any(x.sticky.switch == "unavailable" and x.sticky.previous == pinned for x in routes)


def test_ttl_expiry_and_bound_of_the_memory_store():
    store = MemorySessionStore(max_sessions=2)

    async def go():
        await store.put("a", "s1", Pin("m1", "d", 0), ttl_s=0.05)
        assert (await store.get("a", "s1")).model == "m1"
        assert await store.get("b", "s1") is None  # another owner
        await asyncio.sleep(0.06)
        assert await store.get("a", "s1") is None
        for s in ("x", "y", "z"):
            await store.put("a", s, Pin("m1", "d", 0), ttl_s=60)
        return [await store.get("a", s) for s in ("x", "y", "z")]

    assert [p is not None for p in run(go())] == [False, True, True]


def test_dry_run_pins_nothing():
    r = router(namespace="dry")

    async def go():
        h = {"x-session-id": "d"}
        await r.route(ctx(convo("q"), headers=h), pin=False)
        return await r.route(ctx(convo("q"), headers=h))

    assert run(go()).sticky.previous is None


def test_direct_request_switches_and_the_next_routed_turn_keeps_it():
    r = router(namespace="direct")

    async def go():
        h = {"x-session-id": "x"}
        first = await r.route(ctx(convo("q"), headers=h))
        other = next(m for m in MODELS if m != first.model)
        direct = await r.route(ctx(convo("q", "r"), headers=h, model=other))
        after = await r.route(ctx(convo("q", "r", "s"), headers=h))
        return other, direct, after

    other, direct, after = run(go())
    assert direct.switched and direct.sticky.switch == "direct"
    assert after.model == other and after.sticky.pinned

    async def to_guard():
        h = {"x-session-id": "g"}
        await r.route(ctx(convo("q"), headers=h))
        await r.route(ctx(convo("q", "r"), headers=h, model="guard"))
        return await r.route(ctx(convo("q", "r", "s"), headers=h))

    after = run(to_guard())  # the default decision cannot use the guard model: it routes afresh
    assert after.decision == "default" and after.model != "guard" and after.sticky.switch == "decision_changed"


def test_redis_down_routes_without_stickiness():
    r = router(namespace="down", store="redis", redis_url="redis://127.0.0.1:9/0")
    route = run(r.route(ctx(convo("q"), headers={"x-session-id": "r"})))
    assert route.model in MODELS and route.sticky.error == "store_unavailable" and not route.switched


def test_breaks_must_name_decisions():
    with pytest.raises(ConfigError) as exc:
        router({"breaks": ["gaurd"]})
    assert "decisions[1].stickiness.breaks[0]" in str(exc.value) and "guard" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        router({"header": "bad header"})
    assert "decisions[1].stickiness.header" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        router({"ttl_s": 0})
    assert "decisions[1].stickiness.ttl_s" in str(exc.value)


def test_store_registry_keeps_one_per_namespace():
    assert session_store("memory", namespace="n1") is session_store("memory", namespace="n1")
    assert session_store("memory", namespace="n1") is not session_store("memory", namespace="n2")
