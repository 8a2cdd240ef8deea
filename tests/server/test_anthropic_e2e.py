"""An Anthropic model behind turnout looks like any OpenAI model to the openai client."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import TEST_KEY
from tests.server.test_openai_passthrough import WEATHER_TOOL


@pytest.fixture
def client(turnout):
    return openai.OpenAI(base_url=f"{turnout.url}/v1", api_key="unused", max_retries=0)


def test_text_completion_and_usage(client, upstream_requests):
    result = client.chat.completions.with_raw_response.create(
        model="claude", max_tokens=50, temperature=0.2, stop="END",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello claude"}])
    parsed = result.parse()
    assert parsed.choices[0].message.content == "echo: hello claude"
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage.prompt_tokens == 3 and parsed.usage.completion_tokens == 3
    assert result.headers["x-turnout-model"] == "claude"
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/messages"
    assert sent["headers"]["x-api-key"] == TEST_KEY and sent["headers"]["anthropic-version"] == "2023-06-01"
    assert sent["body"]["system"] == "be brief"
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello claude"}]}]
    assert sent["body"]["max_tokens"] == 50 and sent["body"]["stop_sequences"] == ["END"]


def test_tool_call_round_trip(client, upstream_requests):
    first = client.chat.completions.create(model="claude", tools=[WEATHER_TOOL], tool_choice="required",
                                           messages=[{"role": "user", "content": "weather in Paris #tool"}])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.id == "toolu_mock_1" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert choice.message.content == "Let me check."
    sent = upstream_requests()[-1]["body"]
    assert sent["tools"] == [{"name": "get_weather", "description": "weather for a city",
                              "input_schema": WEATHER_TOOL["function"]["parameters"]}]
    assert sent["tool_choice"] == {"type": "any"}

    client.chat.completions.create(model="claude", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather in Paris"},
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"},
        {"role": "user", "content": "thanks, and tomorrow?"},
    ])
    sent = upstream_requests()[-1]["body"]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][1] == {"type": "tool_use", "id": "toolu_mock_1", "name": "get_weather",
                                     "input": {"city": "Paris", "unit": "celsius"}}
    assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_mock_1", "content": "18C and sunny"}
    assert sent[2]["content"][1] == {"type": "text", "text": "thanks, and tomorrow?"}


def test_image_parts_are_translated(client, upstream_requests):
    client.chat.completions.create(model="claude", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}},
    ]}])
    blocks = upstream_requests()[-1]["body"]["messages"][0]["content"]
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": "iVBORw0KGgo="}}
    assert blocks[2] == {"type": "image", "source": {"type": "url", "url": "https://example.invalid/cat.png"}}


def test_streaming_text_with_usage(client):
    chunks = list(client.chat.completions.create(model="claude", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "stream from claude"}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream from claude"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    assert all(c.id == "msg_mock" for c in chunks)


def test_streaming_tool_call(client):
    chunks = list(client.chat.completions.create(model="claude", stream=True, tools=[WEATHER_TOOL],
                                                 messages=[{"role": "user", "content": "weather #tool"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id == "toolu_mock_1" and calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert json.loads(arguments) == {"city": "Paris", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_upstream_error_is_openai_shaped_and_scrubbed(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "#error:429"}])
    body = info.value.body
    assert "sk-" not in json.dumps(body) and "[redacted]" in body["message"]
    assert info.value.response.headers["retry-after"] == "1"


def test_n_above_one_is_a_clear_400(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="claude", n=2, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["param"] == "n"
