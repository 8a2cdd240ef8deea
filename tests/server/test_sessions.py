"""Session-aware routing end to end: the openai client against a real turnout and the mock upstream."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest

from tests.conftest import base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture

KEYS = {"team-a": "sk-team-a-0123456789", "team-b": "sk-team-b-0123456789"}


def config(url, *, key=("header", "user", "prefix"), algorithm="random", ttl_s=3600.0, breaks=(), state=None,
           auth=False):
    cfg = base_config(url)
    cfg["signals"]["urgent"] = {"kind": "keyword", "words": ["urgent"], "scope": "all"}
    sticky = {"mode": "session", "key": list(key), "ttl_s": ttl_s, "breaks": list(breaks)}
    models = ["small", "strong", "claude"] if algorithm == "random" else ["small", "strong"]
    cfg["decisions"] = [
        {"name": "urgent", "priority": 80, "when": {"signal": "urgent"}, "models": ["claude"]},
        {"name": "default", "priority": 0, "models": models, "stickiness": sticky,
         "algorithm": {"name": algorithm, "params": {"seed": 7} if algorithm == "random" else {}}},
    ]
    if state:
        cfg["state"] = state
    if auth:
        cfg["auth"] = {"keys": [{"name": n, "key": k} for n, k in KEYS.items()]}
    return cfg


def client(server, key="unused"):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def ask(c, messages, *, session=None, user=None, model="auto", stream=False):
    extra = {"extra_headers": {"x-session-id": session}} if session else {}
    if user:
        extra["user"] = user
    if stream:
        with c.chat.completions.with_streaming_response.create(model=model, messages=messages, stream=True,
                                                               **extra) as raw:
            list(raw.iter_lines())
            return raw.headers["x-turnout-model"]
    raw = c.chat.completions.with_raw_response.create(model=model, messages=messages, **extra)
    raw.parse()
    return raw.headers["x-turnout-model"]


def turns(n, first="plan a trip"):
    """The messages of turn n of one conversation (the history resent, as clients do)."""
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": first}]
    for i in range(1, n):
        messages += [{"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": f"and {i}?"}]
    return messages


def counter(server, name, **labels) -> float:
    text = httpx.get(server.url + "/metrics").text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{name}{{{re.escape(want)}}} (\S+)$" if labels else rf"^{name} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_session_header_keeps_the_model_the_selector_would_change(serve, upstream):
    server = serve(config(upstream.url, key=("header",)))
    c = client(server)
    unkept = {ask(c, turns(n)) for n in range(1, 13)}  # no session header: the random pick each turn
    assert len(unkept) > 1
    before = counter(server, "turnout_session_pins_total")
    kept = [ask(c, turns(n), session="conv-1", stream=n % 2 == 0) for n in range(1, 9)]
    assert len(set(kept)) == 1
    assert counter(server, "turnout_session_pins_total") - before == 7  # every turn after the first


@pytest.mark.parametrize("key", ["user", "prefix"])
def test_user_field_and_prefix_hash_as_keys(serve, upstream, key):
    server = serve(config(upstream.url, key=(key,)))
    c = client(server)
    for conversation in ("plan a trip", "write a haiku", "sort a list"):
        models = {ask(c, turns(n, conversation), user=f"u-{conversation}") for n in range(1, 7)}
        assert len(models) == 1, (conversation, models)


def test_a_higher_priority_decision_forces_a_switch_and_says_so(serve, upstream):
    server = serve(config(upstream.url, algorithm="static"))  # default: always small
    c = client(server)
    before = counter(server, "turnout_session_switches_total", decision="urgent", reason="higher_priority")
    assert ask(c, turns(1), session="s") == "small"
    messages = turns(2)
    messages[-1]["content"] = "this is urgent"
    explained = httpx.post(server.url + "/v1/route", json={"model": "auto", "messages": messages},
                           headers={"x-session-id": "s"}).json()
    assert explained["session"]["switched"] and explained["session"]["switch_reason"] == "higher_priority"
    assert explained["session"]["previous_model"] == "small" and explained["model"] == "claude"
    assert ask(c, messages, session="s") == "claude"
    after = counter(server, "turnout_session_switches_total", decision="urgent", reason="higher_priority")
    assert after - before == 1
    # repinned: the next turn stays on the urgent decision's model, the dry run above pinned nothing
    assert ask(c, messages + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "more"}],
               session="s") == "claude"


@pytest.mark.parametrize("breaks", [(), ("urgent",)])
def test_a_tool_call_loop_never_switches(serve, upstream, breaks):
    server = serve(config(upstream.url, algorithm="static", breaks=breaks))
    c = client(server)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "weather in Paris? #tool"}]
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=messages, tools=tools,
                                                      extra_headers={"x-session-id": "loop"})
    first = raw.parse().choices[0].message
    assert raw.headers["x-turnout-model"] == "small" and first.tool_calls
    # the tool's result says "urgent": the urgent decision matches, but the loop stays on its model
    messages += [first.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "urgent: storm warning"}]
    raw = c.chat.completions.with_raw_response.create(model="auto", messages=messages, tools=tools,
                                                      extra_headers={"x-session-id": "loop"})
    raw.parse()
    assert raw.headers["x-turnout-model"] == ("claude" if breaks else "small")
    assert raw.headers["x-turnout-decision"] == ("urgent" if breaks else "default")


def test_another_tenant_with_the_same_session_id_is_not_pinned(serve, upstream):
    server = serve(config(upstream.url, algorithm="static", auth=True))
    a, b = client(server, KEYS["team-a"]), client(server, KEYS["team-b"])
    assert ask(a, turns(1), session="shared") == "small"
    assert ask(a, turns(2), session="shared", model="strong") == "strong"  # asked by name: switch, repin
    assert ask(a, turns(3), session="shared") == "strong"  # kept
    assert ask(b, turns(3), session="shared") == "small"  # team-b's "shared" is another session


def test_a_session_expires_after_its_ttl(serve, upstream):
    server = serve(config(upstream.url, algorithm="static", ttl_s=0.5))
    c = client(server)
    ask(c, turns(1), session="t")
    assert ask(c, turns(2), session="t", model="strong") == "strong"
    assert ask(c, turns(3), session="t") == "strong"
    time.sleep(0.7)
    assert ask(c, turns(4), session="t") == "small"


def test_two_servers_share_sessions_through_redis_and_route_when_it_is_down(serve, upstream, redis_server):  # noqa: F811
    state = {"store": "redis", "redis_url": redis_server.url, "namespace": "t-sess"}
    one = client(serve(config(upstream.url, algorithm="static", state=state)))
    other = client(serve(config(upstream.url, algorithm="static", state=state)))
    ask(one, turns(1), session="r")
    assert ask(one, turns(2), session="r", model="strong") == "strong"
    assert ask(other, turns(3), session="r") == "strong"  # the other process finds the pin
    redis_server.stop()
    assert ask(other, turns(4), session="r") == "small"  # no stickiness while Redis is down, but an answer
    assert ask(one, turns(4), session="r", stream=True) == "small"
