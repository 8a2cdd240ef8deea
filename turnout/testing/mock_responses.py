"""The mock upstream's OpenAI Responses API (POST /v1/responses), for models with `responses_api: true`. It
answers like the chat mock ("echo: <last user text>"), with the same directives (#tool, #error:<status>,
#sleep, #trickle, #midstream-fail, #leakstream, ...); #tool answers a get_weather function_call unless the
input already ends with that call's output. Streams are the Responses API's semantic events."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from turnout.testing.mock_upstream import (
    MOCK_CREATED,
    TOOL_ARGS,
    JSONResponse,
    Mock,
    _credentials,
    _directive,
    _leaky_error,
    _paced,
    _reply,
    _sse,
    _words,
)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return [i for i in value or () if isinstance(i, dict)]


def _last_user_text(items: list[dict[str, Any]]) -> str:
    for item in reversed(items):
        if item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, str):
                return content
            return " ".join(p.get("text", "") for p in content or () if isinstance(p, dict)
                            and p.get("type") == "input_text")
    return ""


def _response(body: dict[str, Any], output: list[dict[str, Any]], status: str, usage: Any) -> dict[str, Any]:
    return {"id": "resp_mock_upstream", "object": "response", "created_at": MOCK_CREATED, "status": status,
            "model": body.get("model", "mock"), "output": output, "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
            "instructions": body.get("instructions"), "usage": usage, "error": None, "incomplete_details": None,
            "previous_response_id": body.get("previous_response_id"), "store": body.get("store", True),
            "text": body.get("text") or {"format": {"type": "text"}}, "metadata": body.get("metadata") or {}}


async def responses(request: Request) -> Response:
    mock: Mock = request.app.state.mock
    body = await request.json()
    mock.record(request, body)
    items = _items(body)
    text = _last_user_text(items)
    if (early := await mock.before(text, anthropic=False, headers=request.headers)) is not None:
        return early
    answered = bool(items) and items[-1].get("type") == "function_call_output"
    tool = _directive(text, "tool") is not None and bool(body.get("tools")) and not answered
    reply = _reply(text)
    usage = {"input_tokens": max(1, len(text) // 4), "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": len(_words(reply)), "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": max(1, len(text) // 4) + len(_words(reply))}
    if tool:
        item = {"id": "fc_mock_1", "type": "function_call", "status": "completed", "call_id": "call_mock_1",
                "name": "get_weather", "arguments": json.dumps(TOOL_ARGS)}
    else:
        item = {"id": "msg_mock_1", "type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": reply, "annotations": []}]}
    final = _response(body, [item], "completed", usage)
    if not body.get("stream"):
        return JSONResponse(final)
    events = _events(body, item, final, reply if not tool else None)
    where = _directive(text, "leakstream")
    if where is not None:
        error = {**_leaky_error(_credentials(request.headers), False)["error"], "type": "error"}
        events = events[:0 if where == "first" else 2] + [_sse(error, "error")]
    return StreamingResponse(_paced(mock, events, text), media_type="text/event-stream")


def _events(body: dict[str, Any], item: dict[str, Any], final: dict[str, Any], reply: str | None) -> list[bytes]:
    seq = iter(range(10_000))

    def ev(data: dict[str, Any]) -> bytes:
        data["sequence_number"] = next(seq)
        return _sse(data, data["type"])

    start = _response(body, [], "in_progress", None)
    out = [ev({"type": "response.created", "response": start}), ev({"type": "response.in_progress", "response": start})]
    if reply is None:
        out.append(ev({"type": "response.output_item.added", "output_index": 0,
                       "item": {**item, "arguments": "", "status": "in_progress"}}))
        args = item["arguments"]
        out += [ev({"type": "response.function_call_arguments.delta", "item_id": item["id"], "output_index": 0,
                    "delta": args[j:j + 8]}) for j in range(0, len(args), 8)]
        out.append(ev({"type": "response.function_call_arguments.done", "item_id": item["id"], "output_index": 0,
                       "arguments": args}))
    else:
        out.append(ev({"type": "response.output_item.added", "output_index": 0,
                       "item": {**item, "content": [], "status": "in_progress"}}))
        part = {"type": "output_text", "text": "", "annotations": []}
        out.append(ev({"type": "response.content_part.added", "item_id": item["id"], "output_index": 0,
                       "content_index": 0, "part": part}))
        out += [ev({"type": "response.output_text.delta", "item_id": item["id"], "output_index": 0,
                    "content_index": 0, "delta": w, "logprobs": []}) for w in _words(reply)]
        out.append(ev({"type": "response.output_text.done", "item_id": item["id"], "output_index": 0,
                       "content_index": 0, "text": reply, "logprobs": []}))
        out.append(ev({"type": "response.content_part.done", "item_id": item["id"], "output_index": 0,
                       "content_index": 0, "part": item["content"][0]}))
    out.append(ev({"type": "response.output_item.done", "output_index": 0, "item": item}))
    out.append(ev({"type": "response.completed", "response": final}))
    return out


ROUTES = [Route("/v1/responses", responses, methods=["POST"]),
          Route("/openai/v1/responses", responses, methods=["POST"])]  # Azure's v1 API
