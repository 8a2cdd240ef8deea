"""cascade through the real server, with the openai client and scripted good and bad answers."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from tests.plans.helpers import SCHEMA, chat_requests, cost_of, plan_config

CASCADE = {"name": "cascade", "params": {"judge": {"name": "format"}}}


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def cascade(serve, upstream):
    return serve(plan_config(upstream.url, CASCADE))


def ask(server, text: str, **kwargs):
    return client(server).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], response_format=SCHEMA, **kwargs)


def test_cheap_answer_that_passes_is_returned_without_escalating(cascade, upstream_requests):
    raw = ask(cascade, "2+2? #as:mock-cheap=say:json_good #as:mock-mid=say:json_bad")
    answer = raw.parse()
    assert json.loads(answer.choices[0].message.content) == {"answer": 4}
    assert raw.headers["x-turnout-model"] == "cheap"
    assert chat_requests(upstream_requests()) == ["mock-cheap"]  # cheapest first, and no further
    attempts = answer.model_extra["turnout_cascade"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [("cheap", "accepted")]
    assert attempts[0]["verdict"]["judge"] == "format" and attempts[0]["verdict"]["passed"] is True


def test_bad_answers_escalate_until_one_passes_and_every_attempt_is_billed(cascade, upstream_requests):
    raw = ask(cascade, "2+2? #as:mock-cheap=say:json_bad #as:mock-mid=say:refusal #as:mock-strong=say:json_good")
    answer = raw.parse()
    assert json.loads(answer.choices[0].message.content) == {"answer": 4}
    assert raw.headers["x-turnout-model"] == "strong"
    assert chat_requests(upstream_requests()) == ["mock-cheap", "mock-mid", "mock-strong"]
    attempts = answer.model_extra["turnout_cascade"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [
        ("cheap", "rejected"), ("mid", "rejected"), ("strong", "accepted")]
    assert attempts[0]["verdict"]["reason"].startswith("not JSON")
    assert attempts[1]["verdict"]["reason"] == "refusal"
    billed = sum(cost_of(a["model"], a["usage"]) for a in attempts)
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx(billed, rel=1e-6)
    assert billed > cost_of("strong", attempts[2]["usage"])  # the rejected answers are paid for too
    assert answer.usage.prompt_tokens == sum(a["usage"]["prompt_tokens"] for a in attempts)
    assert raw.headers["x-turnout-plan-attempts"] == "cheap:answer:rejected,mid:answer:rejected,strong:answer:accepted"


def test_no_answer_passes_returns_the_best_and_max_attempts_caps(serve, upstream, upstream_requests):
    server = serve(plan_config(upstream.url, {"name": "cascade", "params": {"max_attempts": 2}}))
    raw = ask(server, "2+2? #as:mock-cheap=say:json_bad #as:mock-mid=say:json_bad #as:mock-strong=say:json_good")
    assert chat_requests(upstream_requests()) == ["mock-cheap", "mock-mid"]
    attempts = raw.parse().model_extra["turnout_cascade"]
    assert [a["outcome"] for a in attempts] == ["rejected", "picked"]  # tie on score: the later model
    assert raw.headers["x-turnout-model"] == "mid"


def test_on_fail_error_is_a_502_in_openai_shape(serve, upstream):
    server = serve(plan_config(upstream.url, {"name": "cascade", "params": {"on_fail": "error"}}))
    with pytest.raises(openai.APIStatusError) as caught:
        ask(server, "#as:mock-cheap=say:json_bad #as:mock-mid=say:json_bad #as:mock-strong=say:json_bad")
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "cascade_rejected"


def test_a_failing_model_is_skipped(cascade, upstream_requests):
    raw = ask(cascade, "#as:mock-cheap=error:500 #as:mock-mid=say:json_good")
    assert raw.headers["x-turnout-model"] == "mid"
    attempts = raw.parse().model_extra["turnout_cascade"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [("cheap", "failed"), ("mid", "accepted")]


def test_a_bad_request_is_not_sent_to_the_next_model(cascade, upstream_requests):
    with pytest.raises(openai.BadRequestError):
        ask(cascade, "#as:mock-cheap=error:400 #as:mock-mid=say:json_good")
    assert chat_requests(upstream_requests()) == ["mock-cheap"]


def test_stream_sends_only_the_accepted_answer_once(cascade, upstream_requests):
    stream = client(cascade).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "#as:mock-cheap=say:json_bad #as:mock-mid=say:json_good"}],
        response_format=SCHEMA, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert json.loads(text) == {"answer": 4}  # not the cheap answer, not twice
    log = upstream_requests()
    assert chat_requests(log) == ["mock-cheap", "mock-mid"]
    assert not any(r["body"].get("stream") for r in log)  # attempts are whole answers, judged before streaming
    plain = client(cascade).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "#as:mock-cheap=say:json_bad #as:mock-mid=say:json_good"}],
        response_format=SCHEMA)
    assert chunks[-1].usage == plain.usage  # both attempts' tokens, as the plain answer reports them
    assert plain.usage.completion_tokens > len(text.split())


def test_stream_cost_header_counts_every_attempt(cascade, upstream):
    body = {"model": "auto", "stream": True, "response_format": SCHEMA,
            "messages": [{"role": "user", "content": "#as:mock-cheap=say:json_bad #as:mock-mid=say:json_good"}]}
    with httpx.stream("POST", f"{cascade.url}/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        events = response.read().decode()
        assert response.headers["x-turnout-model"] == "mid"
        header = float(response.headers["x-turnout-cost-usd"])
        assert "x-turnout-cost-estimate" not in response.headers  # exact: every attempt was made already
    assert "turnout cost_usd=" in events
    trailer = float(events.split("turnout cost_usd=")[1].split()[0])
    assert trailer == pytest.approx(header) and header > 0
    plain = client(cascade).chat.completions.with_raw_response.create(
        model="auto", messages=body["messages"], response_format=SCHEMA)
    assert float(plain.headers["x-turnout-cost-usd"]) == pytest.approx(header)


def test_attempt_timeout_escalates_and_the_deadline_is_honoured(serve, upstream):
    server = serve(plan_config(upstream.url, {"name": "cascade", "params": {"attempt_timeout_s": 0.5}}))
    start = time.monotonic()
    raw = ask(server, "#as:mock-cheap=sleep:3 #as:mock-mid=say:json_good")
    assert time.monotonic() - start < 2.5
    assert raw.headers["x-turnout-model"] == "mid"
    attempts = raw.parse().model_extra["turnout_cascade"]
    assert attempts[0]["outcome"] == "timeout" and attempts[0]["cost_usd"] > 0  # its prompt, estimated

    tight = serve(plan_config(upstream.url, CASCADE, request_timeout_s=1.0))
    start = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        ask(tight, "#as:mock-cheap=sleep:3 #as:mock-mid=sleep:3 #as:mock-strong=sleep:3")
    assert time.monotonic() - start < 2.5  # one deadline for the whole cascade, not one per model
    assert caught.value.status_code == 504


def test_route_shows_the_plan(cascade):
    explanation = httpx.post(f"{cascade.url}/v1/route", json={
        "model": "auto", "messages": [{"role": "user", "content": "hi"}]}).json()
    assert explanation["plan"]["name"] == "cascade"
    assert explanation["plan"]["models"] == ["cheap", "mid", "strong"]  # cheapest first
    assert explanation["plan"]["judge"] == {"name": "format"}


def test_metrics_count_plan_attempts(cascade):
    ask(cascade, "#as:mock-cheap=say:json_bad #as:mock-mid=say:json_good")
    text = httpx.get(f"{cascade.url}/metrics").text
    assert 'turnout_plan_attempts_total{model="cheap",outcome="rejected",plan="cascade"}' in text
    assert 'turnout_plan_attempts_total{model="mid",outcome="accepted",plan="cascade"}' in text


def test_a_cascade_is_not_counted_as_retries_or_fallbacks(cascade):
    def value(text: str, name: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    before = httpx.get(f"{cascade.url}/metrics").text
    raw = ask(cascade, "#as:mock-cheap=say:json_bad #as:mock-mid=error:500 #as:mock-strong=say:json_good")
    assert "x-turnout-attempts" not in raw.headers  # one failed upstream call is no retry chain
    after = httpx.get(f"{cascade.url}/metrics").text
    assert value(after, "turnout_fallbacks_total{") == value(before, "turnout_fallbacks_total{")
    assert value(after, "turnout_retries_total{") == value(before, "turnout_retries_total{")
    errors = 'turnout_upstream_errors_total{code="upstream_error",model="mid"}'
    assert value(after, errors) == value(before, errors) + 1
