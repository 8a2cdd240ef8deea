"""Translation between OpenAI chat completions and Gemini's generateContent (pure), and the backend's config."""

from __future__ import annotations

import json

import pytest

from turnout.backends import build_backend
from turnout.backends.gemini import _openai_error, _retry_after
from turnout.backends.gemini_schema import clean_schema
from turnout.backends.gemini_wire import StreamTranslator, from_gemini, to_gemini
from turnout.config import ConfigError, ModelConfig
from turnout.errors import InvalidRequestError

CALL = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "x"}'}}


def user(text):
    return {"role": "user", "content": text}


# --- schemas ---

def test_schema_keys_gemini_refuses_are_dropped():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "type": "object",
              "additionalProperties": False, "strict": True, "examples": [{}],
              "properties": {"n": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 2, "minimum": 1},
                             "s": {"type": "string", "format": "email", "pattern": "^a"},
                             "t": {"type": "string", "format": "date-time"}},
              "required": ["n", "missing"]}
    assert clean_schema(schema) == {"type": "object", "required": ["n"], "properties": {
        "n": {"type": "integer", "minimum": 1}, "s": {"type": "string", "pattern": "^a"},
        "t": {"type": "string", "format": "date-time"}}}
    assert "additionalProperties" in schema  # the caller's schema is not modified


def test_schema_refs_are_inlined_and_cycles_cut():
    schema = {"type": "object", "properties": {"node": {"$ref": "#/$defs/Node"}},
              "$defs": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"},
                                                                  "v": {"type": "string"}}}}}
    cleaned = clean_schema(schema)
    depth, node = 0, cleaned["properties"]["node"]
    while "properties" in node:
        node, depth = node["properties"]["child"], depth + 1
    assert node == {"type": "object"} and depth == 8
    legacy = clean_schema({"type": "object", "definitions": {"A": {"type": "string"}},
                           "properties": {"a": {"$ref": "#/definitions/A", "description": "an a"}}})
    assert legacy["properties"]["a"] == {"type": "string", "description": "an a"}


def test_schema_types_unions_and_enums():
    assert clean_schema({"type": ["string", "null"]}) == {"type": "string", "nullable": True}
    assert clean_schema({"type": ["string", "integer"]}) == {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    assert clean_schema({"oneOf": [{"type": "string"}, {"type": "number"}]}) == {
        "anyOf": [{"type": "string"}, {"type": "number"}]}
    assert clean_schema({"const": "fixed"}) == {"type": "string", "enum": ["fixed"]}
    assert clean_schema({"type": "integer", "enum": [1, 2], "description": "level"}) == {
        "type": "integer", "description": "level (one of: 1, 2)"}
    merged = clean_schema({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                                     {"properties": {"b": {"type": "number"}}, "required": ["b"]}]})
    assert merged == {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
                      "required": ["a", "b"]}
    assert clean_schema({"type": "object", "properties": {}}) == {"type": "object"}


# --- requests ---

def test_generation_config_and_response_formats():
    out = to_gemini({"messages": [user("hi")], "max_completion_tokens": 9, "max_tokens": 100, "n": 2,
                     "stop": ["A", "B"], "presence_penalty": 0.5, "frequency_penalty": 0.1,
                     "response_format": {"type": "json_object"}})
    assert out["generationConfig"] == {"presencePenalty": 0.5, "frequencyPenalty": 0.1, "maxOutputTokens": 9,
                                       "stopSequences": ["A", "B"], "candidateCount": 2,
                                       "responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    out = to_gemini({"messages": [user("hi")],
                     "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert out["generationConfig"]["responseSchema"] == {"type": "object", "properties": {"a": {"type": "string"}}}
    assert "generationConfig" not in to_gemini({"messages": [user("hi")], "response_format": {"type": "text"}})
    thinking = [to_gemini({"messages": [user("hi")], "reasoning_effort": e})["generationConfig"]["thinkingConfig"]
                for e in ("none", "low", "high")]
    assert thinking == [{"thinkingBudget": 0}, {"thinkingBudget": 1024}, {"thinkingBudget": 24576}]


def test_tool_messages_become_one_turn_of_function_responses():
    second = {**CALL, "id": "call_2", "function": {"name": "fetch", "arguments": "{}"}}
    out = to_gemini({"messages": [
        user("go"), {"role": "assistant", "content": "on it", "tool_calls": [CALL, second]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"hits": 3}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "[1, 2]"}]},
        user("so?")]})
    assert out["contents"][1] == {"role": "model", "parts": [
        {"text": "on it"}, {"functionCall": {"name": "lookup", "args": {"q": "x"}},
                            "thoughtSignature": "skip_thought_signature_validator"},
        {"functionCall": {"name": "fetch", "args": {}}}]}
    assert out["contents"][2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "lookup", "response": {"hits": 3}}},
        {"functionResponse": {"name": "fetch", "response": {"result": [1, 2]}}},
        {"text": "so?"}]}


def test_thought_signature_goes_back_with_its_call():
    signed = {**CALL, "extra_content": {"google": {"thought_signature": "c2ln"}}}
    out = to_gemini({"messages": [user("go"), {"role": "assistant", "tool_calls": [signed]}]})
    assert out["contents"][1]["parts"][0]["thoughtSignature"] == "c2ln"
    unsigned = {"messages": [user("go"), {"role": "assistant", "tool_calls": [CALL]}]}
    assert "thoughtSignature" not in to_gemini(unsigned, sign_unsigned=False)["contents"][1]["parts"][0]


def test_tools_and_tool_choice():
    no_args = {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
    out = to_gemini({"messages": [user("x")], "tools": [no_args], "tool_choice": "none"})
    assert out["tools"] == [{"functionDeclarations": [{"name": "now"}]}]
    assert out["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}
    assert "toolConfig" not in to_gemini({"messages": [user("x")], "tool_choice": "auto"})  # no tools: nothing


@pytest.mark.parametrize("mode, config", [("auto", {"mode": "AUTO"}),
                                          ("required", {"mode": "ANY", "allowedFunctionNames": ["b"]})])
def test_allowed_tools_choice(mode, config):
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {
        "x": {"type": "string"}}}}} for n in ("a", "b")]
    choice = {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": [
        {"type": "function", "function": {"name": "b"}}]}}
    out = to_gemini({"messages": [user("x")], "tools": tools, "tool_choice": choice})
    assert [d["name"] for d in out["tools"][0]["functionDeclarations"]] == ["b"]
    assert out["toolConfig"] == {"functionCallingConfig": config}


@pytest.mark.parametrize("messages, param", [
    ([{"role": "tool", "tool_call_id": "nowhere", "content": "x"}], "messages[0].tool_call_id"),
    ([{"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{nope"}}]}],
     "messages[0].tool_calls[0].function.arguments"),
    ([{"role": "assistant", "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "[1]"}}]}],
     "messages[0].tool_calls[0].function.arguments"),
    ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,raw"}}]}],
     "messages[0].content[0].image_url.url"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}],
     "messages[0].content[0].image_url.url"),
])
def test_requests_gemini_cannot_take_are_400s_naming_the_field(messages, param):
    with pytest.raises(InvalidRequestError) as info:
        to_gemini({"messages": messages})
    assert info.value.param == param


def test_audio_and_file_parts():
    out = to_gemini({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE"}}]}]})
    assert out["contents"][0]["parts"] == [{"inlineData": {"mimeType": "audio/mp3", "data": "AAA="}},
                                           {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}}]


# --- responses ---

def test_candidates_usage_and_finish_reasons():
    response = {"responseId": "r1", "modelVersion": "gemini-2.5-flash", "candidates": [
        {"index": 0, "finishReason": "MAX_TOKENS", "content": {"parts": [{"text": "hm", "thought": True},
                                                                          {"text": "a"}, {"text": "b"}]}},
        {"index": 1, "finishReason": "STOP", "content": {"parts": [
            {"functionCall": {"id": "fc-7", "name": "lookup", "args": {"q": 1}}, "thoughtSignature": "c2ln"}]}},
        {"index": 2, "finishReason": "RECITATION"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 6,
                          "cachedContentTokenCount": 8, "toolUsePromptTokenCount": 2}}
    out = from_gemini(response, "fallback-name")
    assert out["id"] == "r1" and out["model"] == "gemini-2.5-flash"
    first, second, third = out["choices"]
    assert first["message"] == {"role": "assistant", "content": "ab"} and first["finish_reason"] == "length"
    assert second["finish_reason"] == "tool_calls" and second["message"]["content"] is None
    assert second["message"]["tool_calls"] == [{"id": "fc-7", "type": "function", "function": {
        "name": "lookup", "arguments": '{"q": 1}'}, "extra_content": {"google": {"thought_signature": "c2ln"}}}]
    assert third["finish_reason"] == "content_filter" and third["message"]["content"] == ""
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 10, "total_tokens": 22,
                            "prompt_tokens_details": {"cached_tokens": 8},
                            "completion_tokens_details": {"reasoning_tokens": 6}}


def test_generated_tool_call_ids_are_distinct():
    part = {"functionCall": {"name": "f", "args": {}}}
    out = from_gemini({"candidates": [{"content": {"parts": [part, part]}, "finishReason": "STOP"}]}, "m")
    ids = [c["id"] for c in out["choices"][0]["message"]["tool_calls"]]
    assert len(set(ids)) == 2 and all(i.startswith("call_") for i in ids)


def test_blocked_prompt_is_a_content_filter_completion():
    out = from_gemini({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                       "usageMetadata": {"promptTokenCount": 5}}, "gemini-x")
    assert out["model"] == "gemini-x" and out["usage"]["prompt_tokens"] == 5
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "content_filter", "message": {
        "role": "assistant", "content": "", "refusal": "Gemini blocked the prompt (PROHIBITED_CONTENT)"}}]


# --- streams ---

def test_stream_translation():
    translator = StreamTranslator("m", include_usage=True)
    chunks = translator.feed({"responseId": "s1", "candidates": [{"content": {"parts": [{"text": "Hel"}]}}],
                              "usageMetadata": {"promptTokenCount": 3}})
    chunks += translator.feed({"candidates": [{"content": {"parts": [
        {"text": "lo"}, {"functionCall": {"name": "a", "args": {"x": 1}}},
        {"functionCall": {"name": "b", "args": {}}}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}})
    assert translator.finished
    chunks += translator.close()
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d.get("content") for d in deltas[1:3]] == ["Hel", "lo"]
    assert [(d["tool_calls"][0]["index"], d["tool_calls"][0]["function"]["name"]) for d in deltas[3:5]] == [
        (0, "a"), (1, "b")]
    assert json.loads(deltas[3]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1] == {"id": "s1", "object": "chat.completion.chunk", "created": chunks[0]["created"],
                          "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2,
                                                                 "total_tokens": 5}}
    assert all(c["id"] == "s1" and "usage" in c for c in chunks)


def test_stream_without_usage_and_a_blocked_prompt():
    translator = StreamTranslator("m", include_usage=False)
    chunks = translator.feed({"promptFeedback": {"blockReason": "SAFETY"}})
    assert translator.finished and translator.close() == []
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None, "content_filter"]
    assert all("usage" not in c for c in chunks)
    unfinished = StreamTranslator("m", include_usage=False)
    unfinished.feed({"candidates": [{"content": {"parts": [{"text": "a"}]}}]})
    assert not unfinished.finished


# --- errors and config ---

def test_gemini_errors_in_openai_fields():
    err = {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17.5s"}]}
    assert _openai_error(err) == {"message": "quota", "type": "rate_limit_error", "code": "resource_exhausted"}
    assert _retry_after(err) == "17"
    assert _retry_after({"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "x"}]}) is None
    assert _openai_error({"code": 401, "message": "no", "status": "UNAUTHENTICATED"})["type"] == "authentication_error"


def test_backend_urls_and_headers():
    backend = build_backend("gem", ModelConfig(provider="gemini", model="models/gemini-2.5-pro", api_key="AIza-k"))
    assert str(backend.url) == ("https://generativelanguage.googleapis.com/v1beta/models/"
                                "gemini-2.5-pro:generateContent")
    assert str(backend.stream_url).endswith("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert backend.default_headers()["x-goog-api-key"] == "AIza-k" and "AIza-k" not in str(backend.stream_url)
    v1 = build_backend("g", ModelConfig(provider="gemini", base_url="http://h/", api_version="v1"))
    assert str(v1.url) == "http://h/v1/models/g:generateContent"


def test_safety_settings_option():
    options = {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}
    backend = build_backend("g", ModelConfig(provider="gemini", options=options))
    assert backend.payload({"messages": [user("x")]})["safetySettings"] == options["safety_settings"]
    unsigned = {"messages": [user("go"), {"role": "assistant", "tool_calls": [CALL]}]}
    off = build_backend("g", ModelConfig(provider="gemini", options={"sign_unsigned_calls": False}))
    assert "thoughtSignature" not in off.payload(unsigned)["contents"][1]["parts"][0]
    assert backend.payload(unsigned)["contents"][1]["parts"][0]["thoughtSignature"] == "skip_thought_signature_validator"
    with pytest.raises(ConfigError) as info:
        build_backend("g", ModelConfig(provider="gemini", options={"safety_settings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "NEVER"}]}))
    assert "models.g.options.safety_settings[0].threshold" in str(info.value)
