"""multi_round: the coordinator calls another model as a tool, hears its answer and finishes; rounds capped."""

from __future__ import annotations

import openai

from tests.plans.helpers import chat_requests, plan_config


def ask(server, text: str, **kwargs):
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], **kwargs)


def test_coordinator_asks_a_model_tool_and_answers(serve, upstream, upstream_requests):
    server = serve(plan_config(upstream.url, {"name": "multi_round", "params": {"coordinator": "cheap"}},
                               models=["cheap", "strong"]))
    raw = ask(server, "What is 2+2? #as:mock-cheap=call:ask_strong #as:mock-strong=say:right")
    answer = raw.parse()
    assert raw.headers["x-turnout-model"] == "cheap"
    log = upstream_requests()
    assert chat_requests(log) == ["mock-cheap", "mock-strong", "mock-cheap"]
    first = log[0]["body"]
    assert [t["function"]["name"] for t in first["tools"]] == ["ask_strong"]
    expert = log[1]["body"]
    assert expert["messages"] == [{"role": "user", "content": "What is 2+2? #say:right"}]  # (as rewritten)
    assert "tools" not in expert
    final = log[2]["body"]["messages"]
    assert final[-1] == {"role": "tool", "tool_call_id": "call_ask_strong", "content": "The answer is 4."}
    assert answer.choices[0].finish_reason == "stop"
    attempts = answer.model_extra["turnout_plan"]["attempts"]
    assert [(a["model"], a["outcome"]) for a in attempts] == [("cheap", "tool"), ("strong", "tool"),
                                                               ("cheap", "accepted")]
    assert float(raw.headers["x-turnout-cost-usd"]) > 0


def test_rounds_are_capped_and_the_last_round_must_answer(serve, upstream, upstream_requests):
    server = serve(plan_config(upstream.url, {"name": "multi_round", "params": {"coordinator": "cheap",
                                                                                  "max_rounds": 1}},
                               models=["cheap", "strong"]))
    # the coordinator would call ask_strong forever; after one round it is asked with tool_choice none
    raw = ask(server, "loop #as:mock-cheap=call:ask_strong #as:mock-strong=call:ask_strong")
    log = upstream_requests()
    assert chat_requests(log) == ["mock-cheap", "mock-strong", "mock-cheap"]
    assert log[2]["body"]["tool_choice"] == "none"
    assert raw.parse().choices[0].message.content.startswith("echo:")


def test_a_client_tool_call_goes_back_to_the_client(serve, upstream):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    server = serve(plan_config(upstream.url, {"name": "multi_round", "params": {"coordinator": "cheap"}},
                               models=["cheap", "strong"]))
    answer = ask(server, "weather? #as:mock-cheap=tool", tools=[weather]).parse()
    assert answer.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_stream_of_a_multi_round(serve, upstream):
    server = serve(plan_config(upstream.url, {"name": "multi_round", "params": {"coordinator": "cheap"}},
                               models=["cheap", "strong"]))
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    chunks = list(client.chat.completions.create(model="auto", stream=True, messages=[
        {"role": "user", "content": "Q #as:mock-cheap=call:ask_strong #as:mock-strong=say:right"}]))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("echo:")


def test_spent_cost_cap_makes_the_coordinator_answer(serve, upstream, upstream_requests):
    server = serve(plan_config(upstream.url, {"name": "multi_round", "params": {
        "coordinator": "cheap", "max_rounds": 5, "max_cost_usd": 0.000001}}, models=["cheap", "strong"]))
    raw = ask(server, "loop #as:mock-cheap=call:ask_strong #as:mock-strong=say:right")
    log = upstream_requests()
    assert chat_requests(log) == ["mock-cheap", "mock-strong", "mock-cheap"]  # over the cap after one round
    assert log[2]["body"]["tool_choice"] == "none"
    assert raw.parse().choices[0].finish_reason == "stop"
