"""POST /v1/messages through a real turnout, called by the official anthropic SDK: routed to an OpenAI-format model
(translated) and to the `claude` Anthropic model (passed natively), checked against what the mock upstream got."""

from __future__ import annotations

import json
import logging
import time

import anthropic
import httpx
import pytest
from anthropic.types import Message

from tests.conftest import TEST_KEY, base_config, fresh_minute
from turnout.testing.mock_upstream import FAKE_KEY_IN_ERRORS, TOOL_ARGS

KEY = "sk-messages-door-0123456789abcdef"
WEATHER = {"name": "get_weather", "description": "weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
PNG = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


def sdk(server, key: str = "unused") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)


@pytest.fixture
def client(turnout) -> anthropic.Anthropic:
    return sdk(turnout)


def ask(client, model, text="hello", **kwargs):
    raw = client.messages.with_raw_response.create(model=model, max_tokens=64,
                                                   messages=[{"role": "user", "content": text}], **kwargs)
    return raw.headers, raw.parse()


def test_create_translated_to_an_openai_model(client, upstream_requests):
    headers, message = ask(client, "auto", "hello there")
    assert isinstance(message, Message) and message.content[0].text == "echo: hello there"
    assert message.id.startswith("msg_") and message.id[4:] == headers["x-turnout-request-id"]
    assert message.role == "assistant" and message.stop_reason == "end_turn" and message.model == "mock-small"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 3)  # the mock's own counts
    assert headers["x-turnout-model"] == "small" and headers["x-turnout-decision"] == "default"
    assert float(headers["x-turnout-cost-usd"]) == pytest.approx((2 * 0.1 + 3 * 0.2) / 1e6)
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["headers"]["authorization"] == f"Bearer {TEST_KEY}"
    assert sent["body"] == {"model": "mock-small", "max_tokens": 64,
                            "messages": [{"role": "user", "content": "hello there"}]}


def test_create_passed_natively_to_claude(client, upstream_requests):
    body = {"model": "claude", "max_tokens": 64, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi claude", "cache_control": {"type": "ephemeral"}}]}]}
    raw = client.messages.with_raw_response.create(**body, extra_body={"top_k": 3},
                                                   extra_headers={"anthropic-beta": "turnout-test-2026-12-01"})
    message = raw.parse()
    assert message.id == "msg_mock" and message.model == "claude-mock" and message.content[0].text == "echo: hi claude"
    assert raw.headers["x-turnout-model"] == "claude" and raw.headers["x-turnout-decision"] == "direct"
    assert float(raw.headers["x-turnout-cost-usd"]) == pytest.approx((2 * 3 + 3 * 15) / 1e6)
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1/messages" and sent["headers"]["x-api-key"] == TEST_KEY
    assert sent["headers"]["anthropic-beta"] == "turnout-test-2026-12-01"  # beta flags go with the body
    # as it came (top_k and cache_control too), but for the upstream's model id
    assert sent["body"] == {**body, "top_k": 3, "model": "claude-mock", "stream": False}


def test_system_and_multi_turn(client, upstream_requests):
    turns = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "echo: first"},
             {"role": "user", "content": "second"}]
    for model in ("small", "claude"):
        message = client.messages.create(model=model, max_tokens=32, system=[{"type": "text", "text": "be brief"}],
                                         messages=turns)
        assert message.content[0].text == "echo: second"
    openai_body, native_body = (r["body"] for r in upstream_requests())
    assert openai_body["messages"] == [{"role": "system", "content": "be brief"}, *turns]
    assert native_body["system"] == [{"type": "text", "text": "be brief"}] and native_body["messages"] == turns


@pytest.mark.parametrize("model, upstream_model", [("small", "mock-small"), ("claude", "claude-mock")])
def test_stream_text_final_message_and_usage(client, upstream_requests, model, upstream_model):
    with client.messages.stream(model=model, max_tokens=64,
                                messages=[{"role": "user", "content": "stream these words"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        headers = stream.response.headers
    assert text == "echo: stream these words" and final.content[0].text == text
    assert final.stop_reason == "end_turn" and final.model == upstream_model
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 4)  # the upstream's counts, not estimates
    assert headers["x-turnout-model"] == model and headers["content-type"].startswith("text/event-stream")
    assert headers["x-turnout-decision"] == "direct" and float(headers["x-turnout-cost-usd"]) > 0
    sent = upstream_requests()[-1]["body"]
    assert sent["stream"] is True
    if model == "small":
        assert sent["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("model", ["small", "claude"])
def test_stream_event_sequence(turnout, model):
    with httpx.stream("POST", turnout.url + "/v1/messages", json={
            "model": model, "max_tokens": 64, "stream": True,
            "messages": [{"role": "user", "content": "weather? #tool"}], "tools": [WEATHER]}) as response:
        raw = response.read().decode()
    events = [line[7:] for line in raw.splitlines() if line.startswith("event: ")]
    assert events[0] == "message_start" and events[-1] == "message_stop" and events[-2] == "message_delta"
    assert events.count("content_block_start") == events.count("content_block_stop") >= 1
    assert "input_json_delta" in raw and '"stop_reason":"tool_use"' in raw.replace(": ", ":")
    assert "turnout cost_usd=" in raw.rsplit("message_stop", 1)[1]  # the cost trailer, an SSE comment, last


@pytest.mark.parametrize("model, tool_id", [("small", "call_mock_1"), ("claude", "toolu_mock_1")])
def test_tool_use_over_two_turns(client, upstream_requests, model, tool_id):
    question = {"role": "user", "content": "weather in Paris? #tool"}
    first = client.messages.create(model=model, max_tokens=64, tools=[WEATHER], tool_choice={"type": "any"},
                                   messages=[question])
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.id, use.name, use.input) == (tool_id, "get_weather", TOOL_ARGS)
    sent = upstream_requests()[-1]["body"]
    if model == "small":
        assert sent["tools"] == [{"type": "function", "function": {
            "name": "get_weather", "description": "weather for a city", "parameters": WEATHER["input_schema"]}}]
        assert sent["tool_choice"] == "required"
    else:
        assert sent["tools"] == [WEATHER] and sent["tool_choice"] == {"type": "any"}

    second = client.messages.create(model=model, max_tokens=64, tools=[WEATHER], messages=[
        question, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"},
                                     {"type": "text", "text": "so, a coat?"}]}])
    assert second.stop_reason == "end_turn" and second.content[0].text == "echo: so, a coat?"
    sent = upstream_requests()[-1]["body"]["messages"]
    if model == "small":
        assert sent[1]["tool_calls"][0]["id"] == use.id
        assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == TOOL_ARGS
        assert sent[2:] == [{"role": "tool", "tool_call_id": use.id, "content": "18C and sunny"},
                            {"role": "user", "content": [{"type": "text", "text": "so, a coat?"}]}]
    else:
        assert sent[2]["content"][0] == {"type": "tool_result", "tool_use_id": use.id, "content": "18C and sunny"}


def test_streamed_tool_use_parses_in_the_sdk(client):
    with client.messages.stream(model="small", max_tokens=64, tools=[WEATHER],
                                messages=[{"role": "user", "content": "weather? #tool"}]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[-1].input == TOOL_ARGS


def test_image_blocks(client, upstream_requests):
    url_image = {"type": "image", "source": {"type": "url", "url": "https://example.invalid/cat.png"}}
    content = [{"type": "text", "text": "what is this"}, PNG, url_image]
    for model in ("small", "claude"):
        client.messages.create(model=model, max_tokens=16, messages=[{"role": "user", "content": content}])
    openai_body, native_body = (r["body"] for r in upstream_requests())
    assert openai_body["messages"][0]["content"][1:] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]
    assert native_body["messages"][0]["content"] == content


def test_stop_sequences(client, upstream_requests):
    for model in ("small", "claude"):
        client.messages.create(model=model, max_tokens=16, stop_sequences=["END", "STOP"],
                               messages=[{"role": "user", "content": "count"}])
    openai_body, native_body = (r["body"] for r in upstream_requests())
    assert openai_body["stop"] == ["END", "STOP"] and native_body["stop_sequences"] == ["END", "STOP"]


def test_anthropic_model_names_as_aliases(serve, upstream, upstream_requests):
    config = base_config(upstream.url)
    config["routing"] = {"aliases": ["auto", "claude-sonnet-5-5"]}
    headers, message = ask(sdk(serve(config)), "claude-sonnet-5-5", "route me")
    assert headers["x-turnout-decision"] == "default" and message.content[0].text == "echo: route me"


def test_plugins_mean_translation_even_to_claude(serve, upstream, upstream_requests):
    config = base_config(upstream.url)
    config["plugins"] = [{"name": "system_prompt", "params": {"text": "Be kind."}}]
    headers, message = ask(sdk(serve(config)), "claude", "hello plugin")
    assert message.content[0].text == "echo: hello plugin" and message.id.startswith("msg_")
    sent = upstream_requests()[-1]["body"]
    assert sent["system"] == "Be kind." and sent["messages"][0]["content"] == [{"type": "text", "text": "hello plugin"}]


def test_native_falls_back_to_a_translated_model(serve, upstream, upstream_requests):
    config = base_config(upstream.url)
    config["models"]["claude"]["fallbacks"] = ["small"]
    client = sdk(serve(config))
    text = f"fall back {time.monotonic_ns()} #flaky:1"  # the first ask (claude's) fails, the second answers
    headers, message = ask(client, "claude", text)
    assert headers["x-turnout-attempts"] == "claude:upstream_error,small:ok" and headers["x-turnout-model"] == "small"
    assert message.content[0].text == f"echo: {text}" and message.model == "mock-small"
    text = f"stream {time.monotonic_ns()} #flaky:1"
    with client.messages.stream(model="claude", max_tokens=32,
                                messages=[{"role": "user", "content": text}]) as stream:
        assert "".join(stream.text_stream) == f"echo: {text}"
        assert stream.response.headers["x-turnout-model"] == "small"
    assert [r["path"] for r in upstream_requests()] == ["/v1/messages", "/v1/chat/completions"] * 2


def test_count_tokens(client, upstream_requests):
    counted = client.messages.count_tokens(model="auto", system="be brief", messages=[
        {"role": "user", "content": "twelve chars"}])
    assert counted.input_tokens == (len("be brief\ntwelve chars") + 3) // 4  # turnout's estimate, 4 chars a token
    assert upstream_requests() == []  # no upstream is asked
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.count_tokens(model="auto", messages=[{"role": "user", "content": [{"type": "video"}]}])
    assert caught.value.body["error"]["message"].startswith("messages.0.content.0.type: ")


def auth_config(upstream_url: str, **limits) -> dict:
    config = base_config(upstream_url)
    config["auth"] = {"keys": [{"name": f"messages-{time.monotonic_ns()}", "key": KEY, **limits}]}
    return config


def test_errors_in_anthropic_shape(serve, upstream):
    server = serve(auth_config(upstream.url, rpm=3))
    client = sdk(server, KEY)
    fresh_minute()
    with pytest.raises(anthropic.BadRequestError) as caught:  # the SDK insists on max_tokens: post it bare
        client.post("/v1/messages", cast_to=Message, body={"model": "auto", "messages": [{"role": "user", "content": "x"}]})
    assert caught.value.body == {"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": "max_tokens: Field required"}}
    with pytest.raises(anthropic.AuthenticationError) as caught:
        ask(sdk(server, "sk-wrong-key-0123456789"), "auto")
    assert caught.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.AuthenticationError):
        sdk(server, "sk-wrong-key-0123456789").messages.count_tokens(model="auto", messages=[
            {"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError) as caught:
        ask(client, "claude-opus-nowhere")
    assert caught.value.body["error"]["type"] == "not_found_error"
    assert caught.value.body["error"]["message"].startswith("model: ")
    ask(client, "auto")
    with pytest.raises(anthropic.RateLimitError) as caught:  # the key's fourth this minute (count_tokens is free)
        ask(client, "auto")
    assert caught.value.body["error"]["type"] == "rate_limit_error" and caught.value.response.headers["retry-after"]
    response = httpx.get(server.url + "/v1/messages", headers={"x-api-key": KEY})
    assert response.status_code == 405 and response.json()["type"] == "error"
    response = httpx.post(server.url + "/v1/messages/batches", headers={"x-api-key": KEY}, json={})
    assert response.status_code == 404 and response.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize("model", ["small", "claude"])
def test_upstream_failures_are_anthropic_errors_without_keys(client, model, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(anthropic.InternalServerError) as caught:
        ask(client, model, "break #error:500")
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error" and caught.value.status_code == 502
    assert FAKE_KEY_IN_ERRORS not in json.dumps(body)
    with pytest.raises(anthropic.APIStatusError) as caught:  # a hostile upstream quoting the key it was sent
        ask(client, model, "leak #leakerror:500")
    assert TEST_KEY not in json.dumps(caught.value.body) and TEST_KEY not in str(caught.value)
    with pytest.raises(anthropic.InternalServerError) as caught:
        ask(client, model, "busy #error:529")
    assert caught.value.body["error"]["type"] == "overloaded_error"  # the upstream's, said the client's way
    assert TEST_KEY not in caplog.text and FAKE_KEY_IN_ERRORS not in caplog.text


@pytest.mark.parametrize("model, text", [("small", "cut short #midstream-fail"), ("claude", "leak #leakstream"),
                                         ("claude", "garbled #badevent")])
def test_failure_mid_stream_is_an_error_event(client, model, text):
    with pytest.raises(anthropic.APIStatusError) as caught:
        with client.messages.stream(model=model, max_tokens=64, messages=[{"role": "user", "content": text}]) as s:
            for _ in s.text_stream:
                pass
    body = caught.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error" and body["error"]["message"]
    assert TEST_KEY not in json.dumps(body)
