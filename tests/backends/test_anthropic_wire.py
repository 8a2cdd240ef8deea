"""Translation between OpenAI and Anthropic formats, checked on hand-written cases."""

from __future__ import annotations

import pytest

from turnout.backends.anthropic_wire import StreamTranslator, from_anthropic, to_anthropic
from turnout.errors import InvalidRequestError


def test_request_system_merge_and_defaults():
    out = to_anthropic({"messages": [
        {"role": "system", "content": "A"}, {"role": "developer", "content": [{"type": "text", "text": "B"}]},
        {"role": "user", "content": "one"}, {"role": "user", "content": "two"}],
        "top_p": 0.5, "user": "u1", "parallel_tool_calls": False,
        "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": {"type": "function",
                                                                                  "function": {"name": "f"}}},
        "claude-x", 1024)
    assert out["system"] == "A\n\nB"
    assert out["max_tokens"] == 1024 and out["top_p"] == 0.5 and out["metadata"] == {"user_id": "u1"}
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "one"},
                                                            {"type": "text", "text": "two"}]}]
    assert out["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert out["tool_choice"] == {"type": "tool", "name": "f", "disable_parallel_tool_use": True}


def test_json_response_format_becomes_an_instruction():
    out = to_anthropic({"messages": [{"role": "user", "content": "x"}],
                        "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}},
                       "m", 10)
    assert "JSON" in out["system"] and '{"type": "object"}' in out["system"]


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0].type"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{bad"}}]}]},
     "messages[0].tool_calls[0].function.arguments"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
     "messages[0].content[0].image_url"),
])
def test_untranslatable_requests_name_the_field(body, param):
    with pytest.raises(InvalidRequestError) as info:
        to_anthropic(body, "m", 10)
    assert info.value.param == param


@pytest.mark.parametrize("stop, finish", [("end_turn", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
                                          ("stop_sequence", "stop"), ("refusal", "content_filter")])
def test_response_stop_reasons(stop, finish):
    out = from_anthropic({"id": "m1", "model": "c", "content": [{"type": "text", "text": "hi"}], "stop_reason": stop,
                          "usage": {"input_tokens": 3, "output_tokens": 2, "cache_read_input_tokens": 4}})
    assert out["choices"][0]["finish_reason"] == finish
    assert out["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9,
                            "prompt_tokens_details": {"cached_tokens": 4}}


def test_stream_translator_sequence():
    t = StreamTranslator(include_usage=True)
    out = []
    for event in [
        {"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f"}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    ]:
        out += t.feed(event)
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in out]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert deltas[1] == {"content": "Hi"}
    assert deltas[2]["tool_calls"][0]["id"] == "t" and deltas[3]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert out[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[5]["usage"] == {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}
