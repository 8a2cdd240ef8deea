"""The reask and feedback signals: on contexts (memory and a real redis-server), then through a real turnout where a
re-asked question is routed up and rates its previous answer down (a thompson decision learns from it), and a
tenant who just rated an answer badly is routed up."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import base_config
from tests.plugins.conftest import redis_server  # noqa: F401 - the fixture
from turnout.config.models import StateConfig
from turnout.context import Caller, RoutingContext
from turnout.signals import signals
from turnout.state.feedback import feedback_state

QUESTION = "How do I reverse a linked list in Python?"


def make(kind: str, namespace: str | None = None, state: StateConfig | None = None, **params: Any):
    signal = signals.get(kind).from_config("s", params, "signals.s")
    signal.bind_state(state or StateConfig(), namespace or f"t{time.monotonic_ns()}")
    return signal


def ctx(text: str, tenant: str = "alice") -> RoutingContext:
    return RoutingContext({"messages": [{"role": "user", "content": text}]}, caller=Caller(tenant))


def run(signal, text: str, tenant: str = "alice"):
    context = ctx(text, tenant)
    return context.request_id, asyncio.run(signal.evaluate(context))


def test_reask_matches_the_same_tenants_near_identical_question_within_the_window():
    signal = make("reask")
    first, result = run(signal, QUESTION)
    assert not result.matched
    _, again = run(signal, "how do I reverse a LINKED list in python")  # case and punctuation: the same text
    assert again.matched and again.score == 1.0
    assert again.detail["reask_of"] == first and again.detail["implicit_rating"] == 0.0
    _, rephrased = run(signal, "That did not work. How do I reverse a linked list in Python?")
    assert rephrased.matched and 0.95 <= rephrased.score < 1.0
    assert not run(signal, QUESTION, tenant="bob")[1].matched  # another tenant's questions are not this one's
    assert not run(signal, "What is the capital of France?")[1].matched
    assert not run(signal, "What is the capital of Spain?")[1].matched  # similar, but a different question
    assert not run(signal, "Explain how quicksort partitions an array")[1].matched


def test_reask_window_keep_min_chars_and_no_implicit_rating():
    short = make("reask")
    run(short, "yes")
    assert run(short, "yes")[1].detail == {"reason": "too short"}
    brief = make("reask", window_s=0.2)
    run(brief, QUESTION)
    time.sleep(0.3)
    assert not run(brief, QUESTION)[1].matched  # out of the window
    one = make("reask", keep=1)
    run(one, QUESTION)
    run(one, "Something else entirely, about databases")
    assert not run(one, QUESTION)[1].matched  # only the latest question was kept
    quiet = make("reask", implicit_rating=None)
    run(quiet, QUESTION)
    result = run(quiet, QUESTION)[1]
    assert result.matched and "implicit_rating" not in result.detail


def test_feedback_matches_a_recent_bad_rating_of_the_same_tenant():
    ns = f"t{time.monotonic_ns()}"
    signal = make("feedback", ns, window_s=0.3, below=0.4)
    state = feedback_state("memory", "", ns)
    assert not run(signal, "hi")[1].matched
    asyncio.run(state.set_rating("alice", 0.25))
    result = run(signal, "hi")[1]
    assert result.matched and result.score == pytest.approx(0.75) and result.detail["last_rating"] == 0.25
    assert not run(signal, "hi", tenant="bob")[1].matched
    asyncio.run(state.set_rating("alice", 0.5))
    assert not run(signal, "hi")[1].matched and run(signal, "hi")[1].score == 0.5  # above `below`
    asyncio.run(state.set_rating("alice", 0.0))
    time.sleep(0.4)
    assert not run(signal, "hi")[1].matched  # too long ago


def test_two_processes_share_the_state_through_redis(redis_server):  # noqa: F811
    state = StateConfig(store="redis", redis_url=redis_server.url, namespace=f"t{time.monotonic_ns()}")

    async def scenario():
        one, other = make("reask", state.namespace, state), make("reask", state.namespace, state)
        first = ctx(QUESTION)
        assert not (await one.evaluate(first)).matched
        again = await other.evaluate(ctx(QUESTION))  # another instance (another process) sees the question
        assert again.matched and again.detail["reask_of"] == first.request_id
        await feedback_state("redis", redis_server.url, state.namespace).set_rating("alice", 0.1)
        assert (await make("feedback", state.namespace, state).evaluate(ctx("hi"))).matched
        redis_server.stop()
        down = await one.evaluate(ctx(QUESTION))
        assert not down.matched and down.error == "feedback state unavailable"
        assert (await make("feedback", state.namespace, state).evaluate(ctx("hi"))).error

    asyncio.run(scenario())


ALICE, BOB, ADMIN = "sk-alice-reask-0123456789", "sk-bob-reask-0123456789", "sk-admin-reask-0123456789"


def loop_config(upstream_url: str) -> dict[str, Any]:
    cfg = base_config(upstream_url)
    ns = f"r{time.monotonic_ns()}"
    cfg["state"] = {"namespace": ns}
    cfg["signals"] = {"reask": {"kind": "reask"}, "unhappy": {"kind": "feedback", "below": 0.3}}
    cfg["decisions"] = [
        {"name": "upgrade", "priority": 50, "when": {"any": [{"signal": "reask"}, {"signal": "unhappy"}]},
         "models": ["strong"]},
        {"name": "default", "models": ["small", "strong"],
         "algorithm": {"name": "thompson", "params": {"explore": False}}},
    ]
    cfg["auth"] = {"admin_key_sha256": hashlib.sha256(ADMIN.encode()).hexdigest(), "keys": [
        {"name": f"alice-{ns}", "key": ALICE}, {"name": f"bob-{ns}", "key": BOB}]}
    return cfg


def ask(server, key: str, text: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": text}])
    return raw.headers["x-turnout-request-id"], raw.headers["x-turnout-decision"]


def record(server, request_id: str, until=lambda r: True) -> dict[str, Any]:
    deadline = time.monotonic() + 15  # returns as soon as it is there; CI's 2 cores can be slow
    while True:
        rec = httpx.get(f"{server.url}/v1/router/outcomes/{request_id}",
                        headers={"authorization": f"Bearer {ADMIN}"}).json()
        if until(rec) or time.monotonic() > deadline:
            return rec
        time.sleep(0.02)


def test_a_reask_routes_up_and_rates_the_previous_answer_down(serve, upstream):
    server = serve(loop_config(upstream.url))
    first, decision = ask(server, ALICE, QUESTION)
    assert decision == "default"
    second, decision = ask(server, ALICE, "how do i reverse a linked list in python??")
    assert decision == "upgrade"
    rec = record(server, first, until=lambda r: r["feedback"] is not None)
    assert rec["model"] == "small" and rec["feedback"]["source"] == "reask"
    assert (rec["feedback"]["quality"], rec["feedback"]["learned"]) == (0.0, True)
    assert record(server, second)["signals"]["reask"] == 1.0
    # the default decision learned from it: small was rated down, so a new question goes to strong
    fresh, decision = ask(server, BOB, "Tell me about the history of Rome")
    assert decision == "default" and record(server, fresh)["model"] == "strong"
    # an explicit rating replaces the implicit one on the record (the selector already learned from it)
    r = httpx.post(server.url + "/v1/feedback", json={"request_id": first, "thumbs": "up"},
                   headers={"authorization": f"Bearer {ALICE}"})
    assert r.json()["status"] == "replaced" and r.json()["outcome"]["feedback"]["source"] == "explicit"


def test_a_tenant_who_just_rated_badly_is_routed_up(serve, upstream):
    server = serve(loop_config(upstream.url))
    bobs, decision = ask(server, BOB, "Write me a haiku about autumn")
    assert decision == "default"
    r = httpx.post(server.url + "/v1/feedback", json={"request_id": bobs, "rating": 0.1},
                   headers={"authorization": f"Bearer {BOB}"})
    assert r.status_code == 200
    assert ask(server, BOB, "Now one about winter, please")[1] == "upgrade"
    assert ask(server, ALICE, "A limerick about spring, please")[1] == "default"  # alice rated nothing
    r = httpx.post(server.url + "/v1/feedback", json={"request_id": bobs, "rating": 0.9},
                   headers={"authorization": f"Bearer {BOB}"})
    assert r.json()["status"] == "replaced"
    assert ask(server, BOB, "And summer, to finish the set")[1] == "default"
