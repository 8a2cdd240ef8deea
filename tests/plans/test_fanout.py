"""fanout through the real server: vote, judge_pick, fuse, first_valid; partial failure; every call billed."""

from __future__ import annotations

import time

import openai
import pytest

from tests.plans.helpers import chat_requests, cost_of, plan_config


def ask(server, text: str, **kwargs):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], **kwargs)


def fanout(serve, upstream, **params):
    return serve(plan_config(upstream.url, {"name": "fanout", "params": {"models": ["cheap", "mid", "strong"],
                                                                          **params}}))


def test_vote_takes_the_majority_closed_answer(serve, upstream, upstream_requests):
    server = fanout(serve, upstream, mode="vote")
    raw = ask(server, "2+2? #as:mock-cheap=say:wrong #as:mock-mid=say:right #as:mock-strong=say:right")
    answer = raw.parse()
    assert answer.choices[0].message.content == "The answer is 4."
    assert raw.headers["x-turnout-model"] == "mid"  # the first model with the winning answer
    assert sorted(chat_requests(upstream_requests())) == ["mock-cheap", "mock-mid", "mock-strong"]
    plan = answer.model_extra["turnout_plan"]
    assert plan["plan"] == "fanout"
    picked = [a for a in plan["attempts"] if a["outcome"] == "picked"]
    assert [a["model"] for a in picked] == ["mid"] and picked[0]["verdict"]["votes"] == 2
    billed = sum(cost_of(a["model"], a["usage"]) for a in plan["attempts"])
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(billed, rel=1e-6)


def test_partial_failure_still_answers_from_the_rest(serve, upstream):
    server = fanout(serve, upstream, mode="vote", attempt_timeout_s=0.5)
    start = time.monotonic()
    raw = ask(server, "#as:mock-cheap=error:500 #as:mock-mid=sleep:3 #as:mock-strong=say:right")
    assert time.monotonic() - start < 2.5
    assert raw.parse().choices[0].message.content == "The answer is 4."
    outcomes = {a["model"]: a["outcome"] for a in raw.parse().model_extra["turnout_plan"]["attempts"]}
    assert outcomes == {"cheap": "failed", "mid": "timeout", "strong": "picked"}


def test_every_model_failing_is_an_upstream_error(serve, upstream):
    server = fanout(serve, upstream, mode="vote")
    with pytest.raises(openai.InternalServerError):
        ask(server, "#as:mock-cheap=error:500 #as:mock-mid=error:503 #as:mock-strong=error:500")


def test_judge_pick_asks_the_judge_model_with_the_candidates(serve, upstream, upstream_requests):
    server = fanout(serve, upstream, mode="judge_pick", judge_model="judge", models=["cheap", "strong"])
    raw = ask(server, "2+2? #as:mock-cheap=say:wrong #as:mock-strong=say:right #as:mock-judge=say:two")
    assert raw.parse().choices[0].message.content == "The answer is 4."
    assert raw.headers["x-turnout-model"] == "strong"
    log = upstream_requests()
    judge = [r for r in log if r["body"]["model"] == "mock-judge"]
    assert len(judge) == 1
    prompt = judge[0]["body"]["messages"][0]["content"]
    assert "Answer 1:\nThe answer is 5." in prompt and "Answer 2:\nThe answer is 4." in prompt
    roles = [(a["model"], a["outcome"]) for a in raw.parse().model_extra["turnout_plan"]["attempts"]]
    assert ("judge", "judge") in roles and ("strong", "picked") in roles


def test_fuse_returns_the_fuse_models_answer(serve, upstream, upstream_requests):
    server = fanout(serve, upstream, mode="fuse", fuse_model="judge", models=["cheap", "mid"])
    raw = ask(server, "2+2? #as:mock-cheap=say:wrong #as:mock-mid=say:right #as:mock-judge=say:right")
    assert raw.headers["x-turnout-model"] == "judge"
    assert raw.parse().choices[0].message.content == "The answer is 4."
    fuse = next(r for r in upstream_requests() if r["body"]["model"] == "mock-judge")
    assert "Write one answer that is better than each of them" in fuse["body"]["messages"][-1]["content"]
    assert len(raw.parse().model_extra["turnout_plan"]["attempts"]) == 3


def test_first_valid_returns_the_first_passing_answer_and_cancels_the_rest(serve, upstream):
    server = fanout(serve, upstream, mode="first_valid", models=["cheap", "mid", "strong"])
    start = time.monotonic()
    raw = ask(server, "#as:mock-cheap=say:refusal #as:mock-mid=say:right #as:mock-strong=sleep:5")
    assert time.monotonic() - start < 3
    assert raw.headers["x-turnout-model"] == "mid"
    outcomes = {a["model"]: a["outcome"] for a in raw.parse().model_extra["turnout_plan"]["attempts"]}
    assert outcomes["mid"] == "accepted" and outcomes["strong"] == "cancelled"
    assert outcomes["cheap"] in ("rejected", "cancelled")  # judged first, unless mid came back before it


def test_stream_of_a_vote(serve, upstream):
    server = fanout(serve, upstream, mode="vote")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(model="auto", stream=True, messages=[
        {"role": "user", "content": "#as:mock-cheap=say:right #as:mock-mid=say:wrong #as:mock-strong=say:right"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "The answer is 4."
