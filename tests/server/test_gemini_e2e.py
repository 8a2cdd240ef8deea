"""A Gemini model behind turnout looks like any OpenAI model to the openai client; and the mock Gemini API it is
tested against is the real wire format, as the official google-genai client reads it."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.conftest import TEST_KEY, base_config
from tests.server.test_openai_passthrough import WEATHER_TOOL

GEMINI_KEY = "AIzaSyTestGeminiKey0123456789abcdefghij"
PNG = "data:image/png;base64,iVBORw0KGgo="


@pytest.fixture(scope="module")
def gemini_turnout(upstream):
    from turnout.config import parse_config
    from turnout.server import create_app
    from turnout.testing import ServerThread

    config = base_config(upstream.url)
    config["models"]["gem"] = {"provider": "gemini", "base_url": upstream.url, "model": "gemini-mock",
                               "api_key": GEMINI_KEY, "cost": {"input": 0.3, "output": 2.5}}
    with ServerThread(create_app(config=parse_config(config), watch=False)) as server:
        yield server


@pytest.fixture
def client(gemini_turnout):
    return openai.OpenAI(base_url=f"{gemini_turnout.url}/v1", api_key="unused", max_retries=0)


def test_plain_text_and_usage(client, upstream_requests):
    result = client.chat.completions.with_raw_response.create(
        model="gem", max_tokens=50, temperature=0.2, top_p=0.9, stop="END", seed=7, reasoning_effort="low",
        messages=[{"role": "user", "content": "hello gemini"}])
    parsed = result.parse()
    assert parsed.choices[0].message.content == "echo: hello gemini"
    assert parsed.choices[0].finish_reason == "stop"
    assert (parsed.usage.prompt_tokens, parsed.usage.completion_tokens, parsed.usage.total_tokens) == (3, 3, 6)
    assert parsed.model == "gemini-mock" and result.headers["x-turnout-model"] == "gem"
    sent = upstream_requests()[-1]
    assert sent["path"] == "/v1beta/models/gemini-mock:generateContent" and sent["query"] == ""
    assert sent["headers"]["x-goog-api-key"] == GEMINI_KEY
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {
        "contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}],
        "generationConfig": {"temperature": 0.2, "topP": 0.9, "seed": 7, "maxOutputTokens": 50,
                             "stopSequences": ["END"], "thinkingConfig": {"thinkingBudget": 1024}}}


def test_system_and_multi_turn(client, upstream_requests):
    answer = client.chat.completions.create(model="gem", messages=[
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "answer in English"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello!"},
        {"role": "user", "content": [{"type": "text", "text": "and now?"}]},
    ])
    assert answer.choices[0].message.content == "echo: and now?"
    body = upstream_requests()[-1]["body"]
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}, {"text": "answer in English"}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]},
                                {"role": "model", "parts": [{"text": "hello!"}]},
                                {"role": "user", "parts": [{"text": "and now?"}]}]


def test_function_tool_over_two_turns(client, upstream_requests):
    tool = {"type": "function", "function": {**WEATHER_TOOL["function"], "parameters": {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "additionalProperties": False,
        "properties": {"city": {"type": "string"}, "unit": {"type": ["string", "null"], "enum": ["celsius", "f"]}},
        "required": ["city"]}}}
    messages = [{"role": "user", "content": "weather in Paris #tool"}]
    first = client.chat.completions.create(model="gem", tools=[tool], tool_choice="required", messages=messages)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "unit": "celsius"}
    sent = upstream_requests()[-1]["body"]
    assert sent["tools"] == [{"functionDeclarations": [{
        "name": "get_weather", "description": "weather for a city",
        "parameters": {"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "nullable": True, "enum": ["celsius", "f"]}}}}]}]
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}

    second = client.chat.completions.create(model="gem", tools=[tool], messages=[
        *messages, choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}])
    assert second.choices[0].message.content == 'tool said: {"result": "18C and sunny"}'
    assert second.choices[0].finish_reason == "stop"
    contents = upstream_requests()[-1]["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    # the call goes back with the signature Gemini signed it with
    assert contents[1]["parts"][0] == {"functionCall": {"name": "get_weather", "args": {"city": "Paris",
                                                                                        "unit": "celsius"}},
                                       "thoughtSignature": "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ=="}
    assert contents[2]["parts"] == [{"functionResponse": {"name": "get_weather",
                                                          "response": {"result": "18C and sunny"}}}]


def test_a_client_that_drops_the_signature_still_gets_an_answer(client, upstream_requests):
    # what langchain and most agent loops send back: id, name, arguments, nothing else
    rebuilt = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]}
    answer = client.chat.completions.create(model="gem", tools=[WEATHER_TOOL], messages=[
        {"role": "user", "content": "weather in Rome"}, rebuilt,
        {"role": "tool", "tool_call_id": "call_x", "content": '{"temp": 21}'}])
    assert answer.choices[0].message.content == 'tool said: {"temp": 21}'
    part = upstream_requests()[-1]["body"]["contents"][1]["parts"][0]
    assert part["thoughtSignature"] == "skip_thought_signature_validator"


def test_named_tool_choice(client, upstream_requests):
    client.chat.completions.create(model="gem", tools=[WEATHER_TOOL], messages=[{"role": "user", "content": "x"}],
                                   tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert upstream_requests()[-1]["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}}


def test_stream_with_usage(client, upstream_requests):
    chunks = list(client.chat.completions.create(model="gem", stream=True, stream_options={"include_usage": True},
                                                 messages=[{"role": "user", "content": "stream from gemini #think"}]))
    assert upstream_requests()[-1]["path"] == "/v1beta/models/gemini-mock:streamGenerateContent"
    assert upstream_requests()[-1]["query"] == "alt=sse"
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: stream from gemini #think"  # the thought part is not the answer
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and (usage.prompt_tokens, usage.completion_tokens) == (6, 5 + 5)
    assert usage.completion_tokens_details.reasoning_tokens == 5
    assert all(c.id == "mock-gemini-response" for c in chunks)


def test_stream_tool_call(client):
    chunks = list(client.chat.completions.create(model="gem", stream=True, tools=[WEATHER_TOOL],
                                                 messages=[{"role": "user", "content": "weather #tool"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1 and calls[0].index == 0 and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Paris", "unit": "celsius"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_image_parts(client, upstream_requests):
    client.chat.completions.create(model="gem", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": PNG}},
        {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.JPG?size=2"}},
    ]}])
    parts = upstream_requests()[-1]["body"]["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert parts[2] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.invalid/cat.JPG?size=2"}}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.invalid/picture"}}]}])
    assert info.value.body["param"] == "messages[0].content[0].image_url.url"


@pytest.mark.parametrize("status, error, code", [(429, openai.RateLimitError, "resource_exhausted"),
                                                 (400, openai.BadRequestError, "invalid_argument")])
def test_upstream_errors_mapped_and_scrubbed(client, status, error, code):
    with pytest.raises(error) as info:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": f"#error:{status}"}])
    body = info.value.body
    assert body["code"] == code and "[redacted]" in body["message"] and "sk-" not in json.dumps(body)
    if status == 429:  # Gemini's RetryInfo in the body becomes a Retry-After
        assert info.value.response.headers["retry-after"] == "1"
    with pytest.raises(error) as info:  # a stream refused before it starts is the same error status
        client.chat.completions.create(model="gem", stream=True,
                                       messages=[{"role": "user", "content": f"#error:{status}"}])
    assert info.value.body["code"] == code and "sk-" not in json.dumps(info.value.body)


def test_hostile_error_never_shows_the_key(client):
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "#leakerror:401"}])
    assert GEMINI_KEY not in info.value.response.text
    stream = client.chat.completions.create(model="gem", stream=True,
                                            messages=[{"role": "user", "content": "two words #leakstream"}])
    with pytest.raises(openai.APIError) as info:
        list(stream)
    assert GEMINI_KEY not in json.dumps(info.value.body) and GEMINI_KEY not in str(info.value)


def test_safety_blocks(client):
    blocked = client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "bad #block"}])
    assert blocked.choices[0].finish_reason == "content_filter" and blocked.choices[0].message.content == ""
    assert "SAFETY" in blocked.choices[0].message.refusal
    output = client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "#block:output"}])
    assert output.choices[0].finish_reason == "content_filter"
    chunks = list(client.chat.completions.create(model="gem", stream=True,
                                                 messages=[{"role": "user", "content": "#block:output"}]))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"


def test_midstream_failure_is_an_error_event(client):
    stream = client.chat.completions.create(model="gem", stream=True,
                                            messages=[{"role": "user", "content": "one two three #midstream-fail"}])
    with pytest.raises(openai.APIError):
        list(stream)


def test_other_doors_reach_gemini_too(gemini_turnout, upstream_requests):
    """The Anthropic Messages and OpenAI Responses doors meet the backend in the one internal form. An Anthropic
    client's tool loop has nowhere to keep Gemini's signature: the replayed call is sent with the skip sentinel."""
    claude_like = anthropic.Anthropic(base_url=gemini_turnout.url, api_key="unused", max_retries=0)
    tools = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    asked = [{"role": "user", "content": "weather in Oslo #tool"}]
    first = claude_like.messages.create(model="gem", max_tokens=64, tools=tools, messages=asked)
    assert first.stop_reason == "tool_use" and first.content[-1].input == {"city": "Paris", "unit": "celsius"}
    second = claude_like.messages.create(model="gem", max_tokens=64, tools=tools, messages=[
        *asked, {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": first.content[-1].id, "content": "-3C"}]}])
    assert second.content[0].text == 'tool said: {"result": "-3C"}'
    assert upstream_requests()[-1]["body"]["contents"][1]["parts"][0]["thoughtSignature"] == \
        "skip_thought_signature_validator"
    responses = openai.OpenAI(base_url=f"{gemini_turnout.url}/v1", api_key="unused", max_retries=0).responses
    assert responses.create(model="gem", input="via responses").output_text == "echo: via responses"


# The mock speaks Gemini's real wire format: the official client reads its answers.

@pytest.fixture
def google_client(upstream):
    return genai.Client(api_key=GEMINI_KEY, http_options=types.HttpOptions(base_url=upstream.url))


def test_google_client_reads_plain_answer(google_client):
    answer = google_client.models.generate_content(model="gemini-mock", contents="hello from google")
    assert answer.text == "echo: hello from google"
    assert answer.usage_metadata.prompt_token_count == 4 and answer.usage_metadata.candidates_token_count == 4


def test_google_client_reads_stream(google_client):
    chunks = list(google_client.models.generate_content_stream(model="gemini-mock", contents="a stream"))
    assert "".join(c.text or "" for c in chunks) == "echo: a stream"
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP


def test_google_client_reads_function_call(google_client):
    declaration = types.FunctionDeclaration(name="get_weather", parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}))
    config = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[declaration])],
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    answer = google_client.models.generate_content(model="gemini-mock", contents="weather #tool", config=config)
    assert answer.function_calls[0].name == "get_weather"
    assert answer.function_calls[0].args == {"city": "Paris", "unit": "celsius"}


def test_google_client_reads_errors(google_client, upstream):
    with pytest.raises(genai_errors.ClientError) as info:
        google_client.models.generate_content(model="gemini-mock", contents="#error:429")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"
    keyed = httpx.post(f"{upstream.url}/v1beta/models/gemini-mock:generateContent?key={TEST_KEY}",
                       json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]})
    assert keyed.status_code == 400  # the mock refuses a key in the URL, so a test would catch one


def test_structured_output_schema_is_cut_to_what_gemini_takes(client, upstream_requests):
    from typing import Literal

    from pydantic import BaseModel

    class Place(BaseModel):
        city: str
        country: str | None = None

    class Echo(BaseModel):
        echo: str
        where: Place | None = None
        mood: Literal["calm", "loud"] | None = None

    parsed = client.chat.completions.parse(model="gem", response_format=Echo,
                                           messages=[{"role": "user", "content": "json please"}])
    assert parsed.choices[0].message.parsed == Echo(echo="json please")
    config = upstream_requests()[-1]["body"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    where = config["responseSchema"]["properties"]["where"]  # a $ref into $defs, inlined
    assert where["nullable"] is True and where["properties"]["city"] == {"type": "string", "title": "City"}
    assert "additionalProperties" not in json.dumps(config) and "$" not in json.dumps(config)


def test_several_candidates_and_a_malformed_answer(client, upstream_requests):
    answer = client.chat.completions.create(model="gem", n=2, messages=[{"role": "user", "content": "twice"}])
    assert [c.index for c in answer.choices] == [0, 1]
    assert {c.message.content for c in answer.choices} == {"echo: twice"}
    assert upstream_requests()[-1]["body"]["generationConfig"] == {"candidateCount": 2}
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="gem", messages=[{"role": "user", "content": "#malformed"}])
    assert info.value.status_code == 502 and "not a Gemini response" in info.value.body["message"]
