"""The Responses door's pure parts: request translation, the response object and the stream's events (both
parsed by the openai SDK's own models), and the memory store's TTL, bound and owners."""

from __future__ import annotations

import asyncio
import json

import pytest
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from turnout.doors.responses_output import Turn, from_completion, record
from turnout.doors.responses_stream import ResponsesFramer
from turnout.doors.responses_wire import check_request, to_chat
from turnout.errors import InvalidRequestError, StreamInterruptedError
from turnout.state.responses import MemoryResponseStore

WEATHER = {"type": "function", "name": "get_weather", "description": "weather for a city", "strict": True,
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def chat(body: dict, history: list | None = None) -> dict:
    return to_chat(check_request(body), body, history or [])


def test_a_string_input_with_instructions_and_settings():
    body = {"model": "auto", "input": "hi", "instructions": "be brief", "max_output_tokens": 50, "temperature": 0.3,
            "top_p": 0.9, "user": "u1", "parallel_tool_calls": False, "reasoning": {"effort": "low"},
            "metadata": {"k": "v"}, "text": {"verbosity": "low"}}
    assert chat(body) == {"model": "auto", "messages": [{"role": "system", "content": "be brief"},
                                                        {"role": "user", "content": "hi"}],
                          "temperature": 0.3, "top_p": 0.9, "parallel_tool_calls": False, "user": "u1",
                          "max_completion_tokens": 50, "verbosity": "low", "reasoning_effort": "low"}


def test_items_become_messages_tool_calls_and_tool_results():
    body = {"model": "m", "stream": True, "tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"},
            "input": [
                {"role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
                {"type": "message", "role": "user", "content": [
                    {"type": "input_text", "text": "look: "},
                    {"type": "input_image", "image_url": "https://x.example/a.png", "detail": "low"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me see.",
                                                                      "annotations": []}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
                {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
                {"type": "function_call_output", "call_id": "c1", "output": "18C"},
                {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "21C"}]},
            ]}
    out = chat(body)
    assert out["messages"] == [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": [{"type": "text", "text": "look: "},
                                     {"type": "image_url", "image_url": {"url": "https://x.example/a.png",
                                                                         "detail": "low"}}]},
        {"role": "assistant", "content": "Let me see.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
        {"role": "tool", "tool_call_id": "c2", "content": "21C"},
    ]
    assert out["tools"] == [{"type": "function", "function": {k: WEATHER[k] for k in
                                                              ("name", "description", "parameters", "strict")}}]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("fmt", "expected"), [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "name": "city", "strict": True, "schema": {"type": "object"}},
     {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True}}),
])
def test_text_format(fmt, expected):
    assert chat({"model": "m", "input": "x", "text": {"format": fmt}}).get("response_format") == expected


def test_history_comes_after_instructions_and_before_the_input():
    history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]},
               {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "one"}]}]
    out = chat({"model": "m", "input": "second", "instructions": "sys"}, history)
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant", "user"]
    assert out["messages"][2]["content"] == "one"


@pytest.mark.parametrize(("body", "param"), [
    ({"input": "x"}, "model"),
    ({"model": "m"}, "input"),
    ({"model": "m", "input": 5}, "input"),
    ({"model": "m", "input": "x", "temperature": 3}, "temperature"),
    ({"model": "m", "input": "x", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": "m", "input": "x", "stream": "yes"}, "stream"),
    ({"model": "m", "input": "x", "text": {"verbosity": "loud"}}, "text.verbosity"),
    ({"model": "m", "input": "x", "reasoning": {"effort": "max"}}, "reasoning.effort"),
    ({"model": "m", "input": "x", "background": True}, "background"),
    ({"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]}, "input[1].role"),
    ({"model": "m", "input": [{"role": "user", "content": 3}]}, "input[0].content"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f1"}]}]},
     "input[0].content[0].file_id"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_image"}]}]},
     "input[0].content[0].image_url"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
     "input[0].content[0].type"),
    ({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
    ({"model": "m", "input": [{"role": "user", "content": "a"}, {"type": "web_search_call", "id": "w"}]},
     "input[1].type"),
    ({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"model": "m", "input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"model": "m", "input": [{"content": "no role"}]}, "input[0].type"),
    ({"model": "m", "input": []}, "input"),
    ({"model": "m", "input": "x", "tools": [WEATHER, {"type": "web_search"}]}, "tools[1].type"),
    ({"model": "m", "input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"model": "m", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
    ({"model": "m", "input": "x", "tool_choice": {"type": "file_search"}}, "tool_choice.type"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "name": "n"}}}, "text.format.schema"),
    ({"model": "m", "input": "x", "text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
])
def test_bad_requests_name_the_responses_field(body, param):
    with pytest.raises(InvalidRequestError) as err:
        chat(body)
    assert err.value.param == param, err.value.message
    assert err.value.message.startswith(param)


def test_a_body_that_is_not_an_object():
    with pytest.raises(InvalidRequestError):
        check_request([1])


def turn(body: dict | None = None) -> Turn:
    body = body or {"model": "auto", "input": "hi", "tools": [WEATHER], "metadata": {"k": "v"}}
    return Turn(check_request(body), body, "team-a")


def test_a_completion_is_a_response_the_sdk_parses():
    completion = {"id": "x", "object": "chat.completion", "model": "mock-small", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Checking.",
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather",
                                                                          "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                  "prompt_tokens_details": {"cached_tokens": 2}}}
    t = turn()
    parsed = Response.model_validate(from_completion(t, completion))
    assert parsed.id == t.id and parsed.id.startswith("resp_") and parsed.status == "completed"
    assert parsed.output_text == "Checking." and parsed.model == "mock-small"
    call = parsed.output[1]
    assert call.type == "function_call" and call.call_id == "call_1" and call.id.startswith("fc_")
    assert call.arguments == '{"city":"Paris"}' and call.status == "completed"
    assert parsed.usage.input_tokens == 7 and parsed.usage.output_tokens == 3 and parsed.usage.total_tokens == 10
    assert parsed.usage.input_tokens_details.cached_tokens == 2
    assert parsed.tools[0].name == "get_weather" and parsed.metadata == {"k": "v"} and parsed.store is True


def test_a_length_cut_is_incomplete():
    completion = {"model": "m", "choices": [{"index": 0, "finish_reason": "length",
                                             "message": {"role": "assistant", "content": "partial"}}]}
    parsed = Response.model_validate(from_completion(turn(), completion))
    assert parsed.status == "incomplete" and parsed.incomplete_details.reason == "max_output_tokens"
    assert parsed.output[0].status == "incomplete"


def chunk(delta: dict, finish: str | None = None) -> str:
    return json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "mock-small",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def parse_events(raw: bytes) -> list:
    adapter = TypeAdapter(ResponseStreamEvent)
    events = []
    for block in raw.decode().split("\n\n"):
        lines = block.split("\n")
        if not block or block.startswith(":"):
            continue
        name, data = lines[0].removeprefix("event: "), json.loads(lines[1].removeprefix("data: "))
        assert data["type"] == name
        events.append(adapter.validate_python(data))
    return events


def frames(framer, batch):
    """As the relay calls a framer: each chunk beside its parsed value."""
    return framer.frames(batch, [json.loads(c) for c in batch])


def test_stream_events_in_order_with_sequence_numbers():
    saved = []

    async def save(response):
        saved.append(response)
        return True

    framer = ResponsesFramer(turn(), save)
    raw = frames(framer, [chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello "})])
    raw += frames(framer, [chunk({"content": "there."}),
                          chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                                 "function": {"name": "get_weather", "arguments": ""}}]}),
                          chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                          chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
                          chunk({}, "tool_calls"),
                          json.dumps({"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6}})])
    raw += asyncio.run(framer.end("turnout cost_usd=0.00000100"))
    assert raw.endswith(b": turnout cost_usd=0.00000100\n\n")
    events = parse_events(raw)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.output_item.added",
        "response.function_call_arguments.delta", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    final = events[-1].response
    assert final.output_text == "Hello there." and final.output[1].arguments == '{"city":"Oslo"}'
    assert final.output[1].call_id == "call_9" and final.usage.total_tokens == 10
    assert saved and saved[0]["id"] == final.id


def test_a_failure_mid_stream_is_response_failed_without_secrets():
    async def save(response):
        raise AssertionError("a failed response is not stored")

    framer = ResponsesFramer(turn(), save)
    raw = frames(framer, [chunk({"content": "Hel"})])
    raw += framer.error(StreamInterruptedError("upstream broke: key sk-abcdefghijklmnop"), ("sk-abcdefghijklmnop",))
    events = parse_events(raw)
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"
    assert events[-1].response.error.code == "server_error"
    assert b"sk-abcdefghijklmnop" not in raw


def test_memory_store_ttl_bound_and_owners():
    async def run():
        store = MemoryResponseStore(max_stored=2)
        await store.put("a", "r1", {"n": 1}, 60)
        assert await store.get("a", "r1") == {"n": 1}
        assert await store.get("b", "r1") is None  # another key's id is unknown
        assert not await store.delete("b", "r1")
        await store.put("a", "r2", {"n": 2}, 0.01)
        await asyncio.sleep(0.02)
        assert await store.get("a", "r2") is None  # expired
        await store.put("a", "r3", {"n": 3}, 60)
        await store.put("a", "r4", {"n": 4}, 60)
        assert await store.get("a", "r1") is None and await store.get("a", "r4") == {"n": 4}  # oldest out
        assert await store.delete("a", "r4") and await store.get("a", "r4") is None

    asyncio.run(run())


def test_memory_store_is_bounded_in_bytes_too():
    """A record holds a whole conversation: a few long ones must not fill the process, whatever the count allows."""
    async def run():
        store = MemoryResponseStore(max_stored=1000, max_bytes=10_000)
        for i in range(5):
            await store.put("a", f"r{i}", {"text": "x" * 3000}, 60)
        assert store.bytes <= 10_000 and len(store.records) == 3  # the oldest two went
        assert await store.get("a", "r0") is None and await store.get("a", "r4") is not None
        await store.put("a", "r4", {"text": "y"}, 60)  # replaced: its old size is given back
        assert await store.delete("a", "r3") and store.bytes == len(b'{"text":"x' + b"x" * 2999 + b'"}') + 12

    asyncio.run(run())


def test_the_record_keeps_the_whole_conversation():
    t = turn({"model": "m", "input": "second"})
    t.history = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}]
    response = from_completion(t, {"model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                                                              "message": {"role": "assistant", "content": "two"}}]})
    kept = record(t, response)
    assert [i["type"] for i in kept["conversation"]] == ["message"] * 3
    assert kept["input_items"][0]["content"] == [{"type": "input_text", "text": "second"}]
    assert kept["input_items"][0]["id"].startswith("msg_")
    assert chat({"model": "m", "input": "third"}, kept["conversation"])["messages"][1:3] == [
        {"role": "user", "content": [{"type": "text", "text": "second"}]}, {"role": "assistant", "content": "two"}]
