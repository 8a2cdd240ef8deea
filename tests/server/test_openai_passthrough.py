"""Through turnout, the official openai client sees exactly what it would see going direct."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import TEST_KEY

WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "weather for a city",
                                                 "parameters": {"type": "object",
                                                                "properties": {"city": {"type": "string"}}}}}


def clients(turnout, upstream):
    via = openai.OpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)
    direct = openai.OpenAI(base_url=f"{upstream.url}/v1", api_key=TEST_KEY, max_retries=0)
    return via, direct


def test_content_identical_to_direct(turnout, upstream):
    via, direct = clients(turnout, upstream)
    messages = [{"role": "user", "content": "Tell me about routers"}]
    routed = via.chat.completions.with_raw_response.create(model="small", messages=messages)
    straight = direct.chat.completions.create(model="mock-small", messages=messages)
    parsed = routed.parse()
    assert parsed.choices[0].message.content == straight.choices[0].message.content
    assert parsed.usage == straight.usage
    assert parsed.model_extra["mock_extra_field"] == {"kept": True}  # unknown upstream fields survive
    assert routed.headers["x-turnout-model"] == "small"
    assert routed.headers["x-turnout-decision"] == "direct"
    assert float(routed.headers["x-turnout-cost-usd"]) == pytest.approx(
        (straight.usage.prompt_tokens * 0.1 + straight.usage.completion_tokens * 0.2) / 1e6)


def test_tool_calls_identical_to_direct(turnout, upstream):
    via, direct = clients(turnout, upstream)
    messages = [{"role": "user", "content": "weather in Paris? #tool"}]
    routed = via.chat.completions.create(model="auto", messages=messages, tools=[WEATHER_TOOL])
    straight = direct.chat.completions.create(model="mock-small", messages=messages, tools=[WEATHER_TOOL])
    assert routed.choices[0].finish_reason == "tool_calls"
    assert routed.choices[0].message.tool_calls == straight.choices[0].message.tool_calls
    assert json.loads(routed.choices[0].message.tool_calls[0].function.arguments) == {"city": "Paris", "unit": "celsius"}


def test_stream_identical_to_direct_with_usage(turnout, upstream):
    via, direct = clients(turnout, upstream)
    kwargs = {"messages": [{"role": "user", "content": "stream me five words please"}], "stream": True,
              "stream_options": {"include_usage": True}}
    routed = list(via.chat.completions.create(model="small", **kwargs))
    straight = list(direct.chat.completions.create(model="mock-small", **kwargs))
    assert [c.model_dump() for c in routed] == [c.model_dump() for c in straight]
    assert routed[-1].usage is not None and routed[-1].choices == []
    assert "".join(c.choices[0].delta.content or "" for c in routed if c.choices) == \
        "echo: stream me five words please"


def test_stream_tool_calls_identical_to_direct(turnout, upstream):
    via, direct = clients(turnout, upstream)
    kwargs = {"messages": [{"role": "user", "content": "weather #tool"}], "tools": [WEATHER_TOOL], "stream": True}
    routed = [c.model_dump() for c in via.chat.completions.create(model="small", **kwargs)]
    straight = [c.model_dump() for c in direct.chat.completions.create(model="mock-small", **kwargs)]
    assert routed == straight
    assert routed[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_n_and_response_format_and_extra_fields_reach_upstream(turnout, upstream, upstream_requests):
    via, _ = clients(turnout, upstream)
    result = via.chat.completions.create(
        model="small", messages=[{"role": "user", "content": "json please"}], n=3,
        response_format={"type": "json_object"}, extra_body={"top_k": 5, "vendor_field": {"a": 1}})
    assert [c.index for c in result.choices] == [0, 1, 2]
    sent = upstream_requests()[-1]["body"]
    assert sent["model"] == "mock-small"
    assert sent["n"] == 3 and sent["response_format"] == {"type": "json_object"}
    assert sent["top_k"] == 5 and sent["vendor_field"] == {"a": 1}


def test_upstream_gets_configured_key_not_callers(turnout, upstream, upstream_requests):
    via, _ = clients(turnout, upstream)
    via.chat.completions.create(model="small", messages=[{"role": "user", "content": "hi"}])
    headers = upstream_requests()[-1]["headers"]
    assert headers["authorization"] == f"Bearer {TEST_KEY}"


def test_auto_is_routed_by_decisions(turnout):
    via = openai.OpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)
    code = via.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "why does def f(: not compile"}])
    chat = via.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello there"}])
    assert (code.headers["x-turnout-decision"], code.headers["x-turnout-model"]) == ("code", "strong")
    assert (chat.headers["x-turnout-decision"], chat.headers["x-turnout-model"]) == ("default", "small")
    assert code.parse().model == "mock-strong"


async def test_async_client_stream_and_non_stream(turnout):
    via = openai.AsyncOpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)
    result = await via.chat.completions.create(model="auto", messages=[{"role": "user", "content": "async hi"}])
    assert result.choices[0].message.content == "echo: async hi"
    stream = await via.chat.completions.create(model="auto", messages=[{"role": "user", "content": "async hi"}],
                                               stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "echo: async hi"
    await via.close()


def test_azure_deployment_url_and_key_header(turnout, upstream_requests):
    via = openai.OpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)
    result = via.chat.completions.create(model="azure-gpt", messages=[{"role": "user", "content": "azure hi"}])
    assert result.choices[0].message.content == "echo: azure hi"
    sent = upstream_requests()[-1]
    assert sent["path"] == "/openai/deployments/gpt-dep/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == TEST_KEY and "authorization" not in sent["headers"]


def test_models_endpoint_lists_aliases_and_models(turnout):
    via = openai.OpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in via.models.list()]
    assert ids == ["auto", "small", "strong", "claude", "azure-gpt"]
