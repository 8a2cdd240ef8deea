"""The Messages door's answers from the internal form, checked on hand-written cases; they parse with the anthropic
SDK's own models."""

from __future__ import annotations

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from turnout.doors.messages_output import EventWriter, from_chat, native_usage
from turnout.errors import UpstreamError


def completion(message, finish="stop", usage=None, **choice):
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "up-model",
            "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
            **({"usage": usage} if usage else {})}


def test_response_text_and_usage_parse_with_the_sdk():
    out = from_chat(completion({"role": "assistant", "content": "hi there"},
                               usage={"prompt_tokens": 12, "completion_tokens": 3,
                                      "prompt_tokens_details": {"cached_tokens": 4}}), "msg_1", [], 99)
    message = Message.model_validate(out)
    assert message.id == "msg_1" and message.model == "up-model" and message.content[0].text == "hi there"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.cache_read_input_tokens) == (8, 3, 4)


def test_response_tool_use_and_stop_reasons():
    call = {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    message = Message.model_validate(from_chat(completion({"role": "assistant", "content": None, "tool_calls": [call]},
                                                          "tool_calls"), "msg_2", [], 5))
    assert message.stop_reason == "tool_use" and len(message.content) == 1
    assert (message.content[0].id, message.content[0].name, message.content[0].input) == (
        "call_9", "get_weather", {"city": "Paris"})
    assert message.usage.input_tokens == 5  # no usage: the estimate
    for finish, reason in (("length", "max_tokens"), ("content_filter", "refusal")):
        assert from_chat(completion({"content": "x"}, finish), "m", [], 1)["stop_reason"] == reason
    matched = from_chat(completion({"content": "x"}, stop_reason="END"), "m", ["END"], 1)
    assert (matched["stop_reason"], matched["stop_sequence"]) == ("stop_sequence", "END")
    with pytest.raises(UpstreamError):
        from_chat(completion({"tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1"}}]}), "m", [], 1)


def chunk(delta=None, finish=None, usage=None):
    return {"id": "c", "object": "chat.completion.chunk", "model": "up",
            "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}],
            **({"usage": usage} if usage else {})}


def test_stream_events_text_then_tools():
    writer = EventWriter("msg_3", [], 7)
    events = []
    for c in (chunk({"role": "assistant", "content": ""}), chunk({"content": "Let "}), chunk({"content": "me."}),
              chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                     "function": {"name": "f", "arguments": ""}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
              chunk({"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
              chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                                     "function": {"name": "g", "arguments": "{}"}}]}),
              chunk({}, "tool_calls"), chunk(usage={"prompt_tokens": 20, "completion_tokens": 9})):
        events += writer.feed(c)
    events += writer.finish_events()
    adapter = TypeAdapter(RawMessageStreamEvent)
    for e in events:
        adapter.validate_python(e)
    assert [(e["type"], e.get("index")) for e in events] == [
        ("message_start", None), ("content_block_start", 0), ("content_block_delta", 0), ("content_block_delta", 0),
        ("content_block_stop", 0), ("content_block_start", 1), ("content_block_delta", 1), ("content_block_delta", 1),
        ("content_block_stop", 1), ("content_block_start", 2), ("content_block_delta", 2), ("content_block_stop", 2),
        ("message_delta", None), ("message_stop", None)]
    assert events[0]["message"]["id"] == "msg_3" and events[0]["message"]["usage"]["input_tokens"] == 7
    assert events[5]["content_block"] == {"type": "tool_use", "id": "call_a", "name": "f", "input": {}}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {"input_tokens": 20, "output_tokens": 9}


def test_native_usage_of_messages_and_events():
    assert native_usage({"type": "message", "content": [{"type": "text", "text": "abcd"}],
                         "usage": {"input_tokens": 3, "output_tokens": 2}}) == (
        {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}, 4)
    assert native_usage({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 8}}) == (
        {"completion_tokens": 8}, 0)  # message_start's input count stands
    assert native_usage({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "xyz"}}) == (None, 3)
    assert native_usage({"type": "message_start", "message": [1]}) == (None, 0)  # a malformed event counts nothing
