"""The Responses stream framer on streams an upstream could send to make it quadratic: a tool call's arguments in
tens of thousands of deltas (each was appended to the whole string so far: 40,000 deltas of 50 characters took
13 s on the event loop) and thousands of tool calls between texts (each delta looked its item up in the whole
output list: 10,000 pairs took 7.6 s). The events and the finished response are what they were."""

from __future__ import annotations

import asyncio
import json

from turnout.doors.responses_output import Turn
from turnout.doors.responses_stream import ResponsesFramer
from turnout.doors.responses_wire import check_request


def events(raw: bytes) -> list[dict]:
    return [json.loads(line[len(b"data: "):]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def run(chunks: list[dict]) -> tuple[list[dict], dict]:
    body = {"model": "m", "input": "hi"}
    saved: list[dict] = []

    async def save(response: dict) -> bool:
        saved.append(response)
        return True

    framer = ResponsesFramer(Turn(check_request(body), body, "owner"), save)
    raw = framer.frames([json.dumps(c) for c in chunks], chunks)
    raw += asyncio.run(framer.end("cost"))
    return events(raw), saved[0]


def call(index: int, arguments: str, name: str = "f") -> dict:
    return {"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": index, "id": f"call_{index}", "function": {"name": name, "arguments": arguments}}]}}]}


def text(content: str) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": content}}]}


def test_arguments_in_many_deltas_are_joined_once():
    pieces = [f"{i:05d}" for i in range(40_000)]
    sent, response = run([call(0, p) for p in pieces] + [call(1, '{"a": 1}')])
    done = [e for e in sent if e["type"] == "response.function_call_arguments.done"]
    assert [d["arguments"] for d in done] == ["".join(pieces), '{"a": 1}']
    assert [d["output_index"] for d in done] == [0, 1]
    deltas = [e for e in sent if e["type"] == "response.function_call_arguments.delta"]
    assert len(deltas) == 40_001 and "".join(d["delta"] for d in deltas[:-1]) == "".join(pieces)
    assert [item["arguments"] for item in response["output"]] == ["".join(pieces), '{"a": 1}']


def test_texts_between_many_calls_keep_their_output_index():
    chunks = []
    for i in range(3_000):
        chunks += [text(f"t{i}"), call(i, "{}")]
    sent, response = run(chunks)
    deltas = [e for e in sent if e["type"] == "response.output_text.delta"]
    assert [d["output_index"] for d in deltas] == [2 * i for i in range(3_000)]
    assert [d["delta"] for d in deltas] == [f"t{i}" for i in range(3_000)]
    kinds = [item["type"] for item in response["output"]]
    assert kinds == ["message", "function_call"] * 3_000
    assert response["output"][2]["content"][0]["text"] == "t1"
    done = [e for e in sent if e["type"] == "response.output_item.done"]
    assert sorted(d["output_index"] for d in done) == list(range(6_000))
