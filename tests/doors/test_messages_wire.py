"""The Messages door's request translation, checked on hand-written cases."""

from __future__ import annotations

import json

import pytest

from turnout.doors.messages_wire import check_request, to_chat
from turnout.errors import InvalidRequestError

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
TOOL = {"name": "get_weather", "description": "weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


def chat(body, counting=False):
    return to_chat(body, check_request(body, counting=counting))


def refused(body, counting=False) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        chat(body, counting)
    return caught.value


def test_system_multi_turn_and_parameters():
    out = chat({"model": "auto", "max_tokens": 100, "system": [{"type": "text", "text": "A"},
                                                              {"type": "text", "text": "B"}],
                "messages": [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"},
                             {"role": "user", "content": [{"type": "text", "text": "three"}, IMAGE,
                                                          {"type": "image", "source": {"type": "url",
                                                                                       "url": "https://x.invalid/a.png"}}]}],
                "stop_sequences": ["END"], "temperature": 0.5, "top_p": 0.9, "top_k": 5,
                "metadata": {"user_id": "u-1"}, "stream": True, "cache": {"no-store": True}})
    assert out["messages"] == [
        {"role": "system", "content": "A\n\nB"}, {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": [{"type": "text", "text": "three"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                                     {"type": "image_url", "image_url": {"url": "https://x.invalid/a.png"}}]}]
    assert out["max_tokens"] == 100 and out["stop"] == ["END"] and out["user"] == "u-1"
    assert out["temperature"] == 0.5 and out["top_p"] == 0.9 and "top_k" not in out  # no chat equivalent
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["cache"] == {"no-store": True}  # turnout's own field, for the Exchange to take out


def test_tool_use_and_tool_results_over_turns():
    out = chat({"model": "m", "max_tokens": 10, "tools": [TOOL, {**TOOL, "name": "other", "type": "custom"}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": True}, "messages": [
                    {"role": "user", "content": "weather?"},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                        {"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
                         "content": [{"type": "text", "text": "no"}, {"type": "text", "text": "station"}]},
                        {"type": "text", "text": "and tomorrow?"}]}]})
    assert out["tools"][0] == {"type": "function", "function": {
        "name": "get_weather", "description": "weather for a city", "parameters": TOOL["input_schema"]}}
    assert out["tool_choice"] == "required" and out["parallel_tool_calls"] is False
    assistant = out["messages"][1]
    assert assistant["content"] == "Let me check."  # the thinking block is dropped
    assert [(c["id"], json.loads(c["function"]["arguments"])) for c in assistant["tool_calls"]] == [
        ("toolu_1", {"city": "Paris"}), ("toolu_2", {"city": "Oslo"})]
    assert out["messages"][2:] == [
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "[tool error] no\nstation"},
        {"role": "user", "content": [{"type": "text", "text": "and tomorrow?"}]}]


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "get_weather"}, {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}}),
])
def test_tool_choice(choice, expected):
    out = chat({"model": "m", "max_tokens": 1, "tools": [TOOL], "tool_choice": choice,
                "messages": [{"role": "user", "content": "x"}]})
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected
    assert "tool_choice" not in chat({"model": "m", "max_tokens": 1, "tool_choice": choice,
                                      "messages": [{"role": "user", "content": "x"}]})  # no tools: nothing to choose


@pytest.mark.parametrize("thinking, output_config, effort", [
    ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
    ({"type": "enabled", "budget_tokens": 8000}, None, "medium"),
    ({"type": "enabled", "budget_tokens": 32000}, None, "high"),
    ({"type": "adaptive"}, None, None),
    ({"type": "disabled"}, None, None),
    ({"type": "enabled", "budget_tokens": 1024}, {"effort": "max"}, "high"),
])
def test_thinking_becomes_reasoning_effort(thinking, output_config, effort):
    body = {"model": "m", "max_tokens": 1, "thinking": thinking, "messages": [{"role": "user", "content": "x"}]}
    if output_config:
        body["output_config"] = output_config
    assert chat(body).get("reasoning_effort") == effort


def test_plain_text_documents_are_text():
    out = chat({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "document", "title": "Notes", "source": {"type": "text", "media_type": "text/plain", "data": "abc"}}]}]})
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Notes\n\nabc"}]


@pytest.mark.parametrize("body, param", [
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ({"model": "m", "max_tokens": 1, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]},
     "temperature"),
    ({"model": "m", "max_tokens": 1, "messages": []}, "messages"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}, {"role": "system", "content": "y"}]},
     "messages.1.role"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "text", "text": "a"}, {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]},
     "messages.1.content.1.type"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
     "messages.0.content.0.text"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}]}]},
     "messages.0.content.0.source.type"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": "x"}}]}]},
     "messages.0.content.0.source.media_type"),
    ({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t", "content": [IMAGE]}]}]}, "messages.0.content.0.content.0.type"),
    ({"model": "m", "max_tokens": 1, "tools": [TOOL, {"type": "web_search_20250305", "name": "web_search"}],
      "messages": [{"role": "user", "content": "x"}]}, "tools.1.type"),
    ({"model": "m", "max_tokens": 1, "tools": [{"name": "f"}], "messages": [{"role": "user", "content": "x"}]},
     "tools.0.input_schema"),
    ({"model": "m", "max_tokens": 1, "tool_choice": {"type": "tool"}, "messages": [{"role": "user", "content": "x"}]},
     "tool_choice.name"),
    ({"model": "m", "max_tokens": 1, "thinking": {"type": "enabled"}, "messages": [{"role": "user", "content": "x"}]},
     "thinking.budget_tokens"),
    ({"model": "m", "max_tokens": 1, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]},
     "system.0.type"),
])
def test_errors_name_the_field(body, param):
    err = refused(body)
    assert err.param == param and err.message.startswith(param + ": ") and err.status == 400


def test_count_tokens_bodies_need_no_max_tokens():
    assert "max_tokens" not in chat({"model": "m", "messages": [{"role": "user", "content": "x"}]}, counting=True)
